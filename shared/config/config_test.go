package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string // the variable the error names; "" for success
		check   func(Config) bool
	}{
		{"defaults", nil, "", func(c Config) bool {
			return c.MaxKeyAgeDays == 90 && c.UnusedDays == 45 && c.GracePeriod == 7*24*time.Hour &&
				c.SecretPrefix == "iam-access-keys/" && c.EmailTag == "email" && c.ExemptTag == "keyrotor:exempt" && !c.RetirePasswords &&
				c.HoldDays == 30
		}},
		{"overrides", map[string]string{EnvMaxKeyAgeDays: "30", EnvGracePeriod: "0s", EnvSender: "keyrotor@example.com", EnvRetirePasswords: "true"}, "", func(c Config) bool {
			return c.MaxKeyAgeDays == 30 && c.GracePeriod == 0 && c.Sender == "keyrotor@example.com" && c.RetirePasswords
		}},
		{"max age not a number", map[string]string{EnvMaxKeyAgeDays: "ninety"}, EnvMaxKeyAgeDays, nil},
		{"max age zero", map[string]string{EnvMaxKeyAgeDays: "0"}, EnvMaxKeyAgeDays, nil},
		{"unused negative", map[string]string{EnvUnusedDays: "-1"}, EnvUnusedDays, nil},
		{"grace not a duration", map[string]string{EnvGracePeriod: "7 days"}, EnvGracePeriod, nil},
		{"grace negative", map[string]string{EnvGracePeriod: "-1h"}, EnvGracePeriod, nil},
		{"grace longer than max age", map[string]string{EnvMaxKeyAgeDays: "5", EnvGracePeriod: "168h"}, EnvGracePeriod, nil},
		{"malformed sender", map[string]string{EnvSender: "Key Rotor <kr@example.com>"}, EnvSender, nil},
		{"sender without domain", map[string]string{EnvSender: "keyrotor"}, EnvSender, nil},
		{"bad prefix", map[string]string{EnvSecretPrefix: "keys with spaces/"}, EnvSecretPrefix, nil},
		{"topic not an ARN", map[string]string{EnvAdminTopicARN: "admins"}, EnvAdminTopicARN, nil},
		{"retire passwords not a bool", map[string]string{EnvRetirePasswords: "sometimes"}, EnvRetirePasswords, nil},
		{"hold days set", map[string]string{EnvHoldDays: "14"}, "", func(c Config) bool { return c.HoldDays == 14 }},
		{"hold days zero", map[string]string{EnvHoldDays: "0"}, EnvHoldDays, nil},
		{"hold days over a year", map[string]string{EnvHoldDays: "366"}, EnvHoldDays, nil},
		{"single account by default", nil, "", func(c Config) bool { return !c.Organization() }},
		{"organization, all accounts", map[string]string{EnvOrgScope: "all", EnvHomeAccount: "123456789012"}, "", func(c Config) bool {
			return c.Organization() && reflect.DeepEqual(c.OrgScope, []string{"all"}) && c.HomeAccount == "123456789012"
		}},
		{"organization, stages", map[string]string{EnvOrgScope: "r-ab12", EnvOrgExclude: "111111111111", EnvOrgStages: "ou-ab12-devdevde; ou-ab12-prodprod,222222222222"}, "", func(c Config) bool {
			return reflect.DeepEqual(c.OrgStages, [][]string{{"ou-ab12-devdevde"}, {"ou-ab12-prodprod", "222222222222"}}) && c.OrgExclude[0] == "111111111111"
		}},
		{"scope all with others", map[string]string{EnvOrgScope: "all,111111111111"}, EnvOrgScope, nil},
		{"scope not an id", map[string]string{EnvOrgScope: "production"}, EnvOrgScope, nil},
		{"exclude without scope", map[string]string{EnvOrgExclude: "111111111111"}, EnvOrgExclude, nil},
		{"stages without scope", map[string]string{EnvOrgStages: "ou-ab12-devdevde"}, EnvOrgStages, nil},
		{"exclude not an account", map[string]string{EnvOrgScope: "all", EnvOrgExclude: "ou-ab12-devdevde"}, EnvOrgExclude, nil},
		{"empty stage", map[string]string{EnvOrgScope: "all", EnvOrgStages: "ou-ab12-devdevde;;ou-ab12-prodprod"}, EnvOrgStages, nil},
		{"target in two stages", map[string]string{EnvOrgScope: "all", EnvOrgStages: "111111111111;111111111111"}, EnvOrgStages, nil},
		{"home not an account", map[string]string{EnvOrgScope: "all", EnvHomeAccount: "hub"}, EnvHomeAccount, nil},
		{"break-glass principals", map[string]string{EnvBreakGlass: "arn:aws:iam::123456789012:role/BreakGlass, arn:aws:iam::123456789012:user/ops/recovery"}, "", func(c Config) bool {
			return reflect.DeepEqual(c.BreakGlass, []string{"arn:aws:iam::123456789012:role/BreakGlass", "arn:aws:iam::123456789012:user/ops/recovery"})
		}},
		{"break-glass wildcard", map[string]string{EnvBreakGlass: "arn:aws:iam::123456789012:role/*"}, EnvBreakGlass, nil},
		{"break-glass account root", map[string]string{EnvBreakGlass: "arn:aws:iam::123456789012:root"}, EnvBreakGlass, nil},
		{"break-glass not an ARN", map[string]string{EnvBreakGlass: "BreakGlass"}, EnvBreakGlass, nil},
		{"store role not a role ARN", map[string]string{EnvStoreRoleARN: "create-and-store"}, EnvStoreRoleARN, nil},
		// Adoption checks closer than IAM's recording interval of a key's
		// use cannot tell "unused" from "not yet recorded" (issue 18).
		{"adoption check below the recording interval", map[string]string{EnvAdoptionWindow: "336h", EnvAdoptionCheck: "2s"}, EnvAdoptionCheck, nil},
		{"adoption check at the recording interval", map[string]string{EnvAdoptionWindow: "336h", EnvAdoptionCheck: "15m"}, "", func(c Config) bool {
			return c.CheckEvery() == 15*time.Minute && c.Recording() == RecordingInterval
		}},
		{"emulated account: recording interval scaled to the check", map[string]string{EnvAdoptionWindow: "10s", EnvAdoptionCheck: "2s", EnvRecordingInterval: "2s"}, "", func(c Config) bool {
			return c.CheckEvery() == 2*time.Second && c.Recording() == 2*time.Second
		}},
		// deliverySecrets may never reach keyrotor's own secrets: the
		// stored keys (the prefix) and the destinations' tokens.
		{"delivery secrets by prefix", map[string]string{EnvDeliverySecrets: "ci/aws-*,deploy/key"}, "", func(c Config) bool {
			return reflect.DeepEqual(c.DeliverySecrets, []string{"ci/aws-*", "deploy/key"})
		}},
		{"delivery secrets over the stored keys", map[string]string{EnvDeliverySecrets: "iam-access-keys/ci-*"}, EnvDeliverySecrets, nil},
		{"delivery secrets a prefix of the stored keys'", map[string]string{EnvDeliverySecrets: "iam-*"}, EnvDeliverySecrets, nil},
		{"delivery secrets over the tokens", map[string]string{EnvDeliverySecrets: "keyrotor-delivery/github"}, EnvDeliverySecrets, nil},
		{"delivery secrets over a custom stored-key prefix", map[string]string{EnvSecretPrefix: "ci/keys/", EnvDeliverySecrets: "ci/*"}, EnvDeliverySecrets, nil},
		{"recording interval negative", map[string]string{EnvRecordingInterval: "-1s"}, EnvRecordingInterval, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantVar == "" {
				if err != nil || !tt.check(c) {
					t.Fatalf("FromEnv(%v) = %+v, %v; want valid config", tt.env, c, err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tt.wantVar || !strings.Contains(err.Error(), tt.wantVar) {
				t.Fatalf("FromEnv(%v) error = %v; want an error naming %s", tt.env, err, tt.wantVar)
			}
		})
	}
}

func TestEnvRoundTrip(t *testing.T) {
	c := Default()
	c.Sender, c.AdminTopicARN, c.KMSKeyID, c.ReportBucket, c.ExemptGroup = "k@example.com", "arn:aws:sns:us-east-1:1:t", "key", "bucket", "breakglass"
	c.GracePeriod, c.RetirePasswords, c.HoldDays = time.Hour, true, 45
	c.AdoptionWindow, c.AdoptionCheck, c.AdoptionReminders = 14*24*time.Hour, time.Hour, []time.Duration{7 * 24 * time.Hour, 24 * time.Hour}
	c.StoreRoleARN, c.BreakGlass = "arn:aws:iam::123456789012:role/KeyRotor-create-and-store", []string{"arn:aws:iam::123456789012:role/BreakGlass"}
	env := c.Env()
	got, err := FromEnv(func(k string) string { return env[k] })
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("FromEnv(Env(%+v)) = %+v, %v", c, got, err)
	}
}
