package settings

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFromContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		wantKey string // the key the error names; "" for success
		check   func(Settings) bool
	}{
		{"defaults", nil, "", func(s Settings) bool {
			return s.Schedule == "rate(1 day)" && s.FanOutConcurrency == 10000 && s.LambdaConcurrency == 0 && s.Config.GracePeriod == 7*24*time.Hour &&
				s.Config.MaxKeyAgeDays == 90 && s.Config.HoldDays == 30
		}},
		{"strings from -c", map[string]any{"maxKeyAgeDays": "60", "graceDays": "3", "schedule": "off", "adminEmails": "a@example.com, b@example.com", "retirePasswords": "true"}, "", func(s Settings) bool {
			return s.Config.MaxKeyAgeDays == 60 && s.Config.GracePeriod == 72*time.Hour && s.Schedule == "" && len(s.AdminEmails) == 2 && s.Config.RetirePasswords
		}},
		{"JSON from cdk.json", map[string]any{"fanOutConcurrency": float64(200), "adminEmails": []any{"sec@example.com"}, "senderAddress": "keyrotor@example.com"}, "", func(s Settings) bool {
			return s.FanOutConcurrency == 200 && s.AdminEmails[0] == "sec@example.com" && s.Config.Sender == "keyrotor@example.com"
		}},
		{"cron schedule", map[string]any{"schedule": "cron(0 6 * * ? *)"}, "", func(s Settings) bool { return s.Schedule == "cron(0 6 * * ? *)" }},
		{"bad number", map[string]any{"maxKeyAgeDays": "ninety"}, "maxKeyAgeDays", nil},
		{"grace longer than max age", map[string]any{"maxKeyAgeDays": "5", "graceDays": "7"}, "graceDays", nil},
		{"bad schedule", map[string]any{"schedule": "daily"}, "schedule", nil},
		{"bad sender", map[string]any{"senderAddress": "not an address"}, "senderAddress", nil},
		{"bad admin", map[string]any{"adminEmails": "ok@example.com,nope"}, "adminEmails", nil},
		{"bad kms", map[string]any{"kmsKeyArn": "alias/mine"}, "kmsKeyArn", nil},
		{"kms not an ARN", map[string]any{"kmsKeyArn": "arn:bad"}, "kmsKeyArn", nil},
		{"kms alias ARN", map[string]any{"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:alias/mine"}, "kmsKeyArn", nil},
		{"kms key ARN", map[string]any{"kmsKeyArn": "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}, "", func(s Settings) bool { return s.KMSKeyArn != "" }},
		{"bad concurrency", map[string]any{"fanOutConcurrency": "0"}, "fanOutConcurrency", nil},
		{"organization from -c", map[string]any{"organizationScope": "all", "organizationExclude": "111111111111,222222222222"}, "", func(s Settings) bool {
			return s.Config.Organization() && len(s.Config.OrgExclude) == 2
		}},
		{"organization stages from cdk.json", map[string]any{"organizationScope": []any{"r-ab12"}, "organizationStages": []any{[]any{"ou-ab12-devdevde"}, []any{"ou-ab12-prodprod", "333333333333"}}}, "", func(s Settings) bool {
			return len(s.Config.OrgStages) == 2 && s.Config.OrgStages[1][1] == "333333333333" && s.Config.Env()["KEYROTOR_ORG_STAGES"] == "ou-ab12-devdevde;ou-ab12-prodprod,333333333333"
		}},
		{"organization stages as a -c string", map[string]any{"organizationScope": "all", "organizationStages": `[["111111111111"],["222222222222"]]`}, "", func(s Settings) bool {
			return len(s.Config.OrgStages) == 2
		}},
		{"account id as a JSON number", map[string]any{"organizationScope": "all", "organizationExclude": []any{float64(111111111111)}}, "organizationExclude", nil},
		{"stages not a list", map[string]any{"organizationScope": "all", "organizationStages": "ou-ab12-devdevde"}, "organizationStages", nil},
		{"stages without scope", map[string]any{"organizationStages": []any{[]any{"111111111111"}}}, "organizationStages", nil},
		{"scope typo", map[string]any{"organizationScope": "everything"}, "organizationScope", nil},
		{"owner domains from cdk.json", map[string]any{"ownerEmailDomains": []any{"Corp.Example", "eu.corp.example"}}, "", func(s Settings) bool {
			return len(s.Config.OwnerEmailDomains) == 2 && s.Config.OwnerEmailDomains[0] == "corp.example" && s.Config.Env()["KEYROTOR_OWNER_EMAIL_DOMAINS"] == "corp.example,eu.corp.example"
		}},
		{"excluded user paths", map[string]any{"excludedUserPaths": []any{"/breakglass/", "/ops/admins/"}}, "", func(s Settings) bool {
			return len(s.Config.ExcludedUserPaths) == 2 && s.Config.Env()["KEYROTOR_EXCLUDED_USER_PATHS"] == "/breakglass/,/ops/admins/"
		}},
		{"excluded user path without slashes", map[string]any{"excludedUserPaths": "breakglass"}, "excludedUserPaths", nil},
		{"excluded user path: the root", map[string]any{"excludedUserPaths": "/"}, "excludedUserPaths", nil},
		{"excluded user path with a wildcard", map[string]any{"excludedUserPaths": "/break*/"}, "excludedUserPaths", nil},
		{"owner domain with an @", map[string]any{"ownerEmailDomains": "@corp.example"}, "ownerEmailDomains", nil},
		{"owner domain wildcard", map[string]any{"ownerEmailDomains": []any{"*.corp.example"}}, "ownerEmailDomains", nil},
		{"break-glass principals from cdk.json", map[string]any{"breakGlassPrincipals": []any{"arn:aws:iam::123456789012:role/BreakGlass"}}, "", func(s Settings) bool {
			return len(s.Config.BreakGlass) == 1 && s.Config.Env()["KEYROTOR_BREAK_GLASS"] == "arn:aws:iam::123456789012:role/BreakGlass"
		}},
		{"break-glass wildcard", map[string]any{"breakGlassPrincipals": "arn:aws:iam::123456789012:role/*"}, "breakGlassPrincipals", nil},
		{"break-glass not a list", map[string]any{"breakGlassPrincipals": float64(1)}, "breakGlassPrincipals", nil},
		{"lists too long for Lambda's environment", map[string]any{"organizationScope": "all", "organizationStages": manyAccountStages(200)}, "organizationStages", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromContext(func(k string) (any, bool) { v, ok := tt.ctx[k]; return v, ok })
			if tt.wantKey == "" {
				if err != nil || !tt.check(s) {
					t.Fatalf("FromContext(%v) = %+v, %v", tt.ctx, s, err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Key != tt.wantKey || !strings.Contains(err.Error(), tt.wantKey) {
				t.Fatalf("FromContext(%v) error = %v; want one naming %s", tt.ctx, err, tt.wantKey)
			}
		})
	}
}

// TestRanges: the bounds of the numeric settings that AWS limits impose,
// and errors that name the setting and say what to set.
func TestRanges(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		value   any
		wantErr string // a fragment of the error; "" for valid
		check   func(Settings) bool
	}{
		{"no reserved concurrency", KeyLambdaConcurrency, "0", "", func(s Settings) bool { return s.LambdaConcurrency == 0 }},
		{"reserved concurrency", KeyLambdaConcurrency, float64(5), "", func(s Settings) bool { return s.LambdaConcurrency == 5 }},
		{"negative concurrency", KeyLambdaConcurrency, "-1", "100 + 5 x N", nil},
		{"concurrency not a number", KeyLambdaConcurrency, "ten", "0 (the default) reserves no Lambda concurrency", nil},
		{"grace one day", KeyGraceDays, "1", "", func(s Settings) bool { return s.Config.GracePeriod == 24*time.Hour }},
		{"grace longest", KeyGraceDays, float64(MaxGraceDays), "", func(s Settings) bool { return s.Config.GracePeriod == MaxGraceDays*24*time.Hour }},
		{"grace zero", KeyGraceDays, "0", "from 1 to 350", nil},
		{"grace too long", KeyGraceDays, float64(MaxGraceDays + 1), "one year", nil},
		{"grace a year", KeyGraceDays, "365", "from 1 to 350", nil},
		{"grace within a year but not a redrive", KeyGraceDays, "358", "Redrive", nil},
		{"grace negative", KeyGraceDays, "-7", "from 1 to 350", nil},
		{"hold one day", KeyHoldDays, "1", "", func(s Settings) bool { return s.Config.HoldDays == 1 }},
		{"hold a year", KeyHoldDays, float64(365), "", func(s Settings) bool { return s.Config.HoldDays == 365 }},
		{"hold zero", KeyHoldDays, "0", "from 1 to 365 (default 30)", nil},
		{"hold over a year", KeyHoldDays, "366", "from 1 to 365 (default 30)", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// maxKeyAgeDays is raised so that only the range under test can fail.
			ctx := map[string]any{tt.key: tt.value, KeyMaxKeyAgeDays: "3650"}
			s, err := FromContext(func(k string) (any, bool) { v, ok := ctx[k]; return v, ok })
			if tt.wantErr == "" {
				if err != nil || !tt.check(s) {
					t.Fatalf("FromContext(%v) = %+v, %v; want valid settings", ctx, s, err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Key != tt.key || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("FromContext(%v) error = %v; want one naming %s and saying %q", ctx, err, tt.key, tt.wantErr)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	got := Unknown(map[string]any{"maxKeyAge": 1, "graceDays": 2, "@aws-cdk/core:foo": true, "aws:cdk:x": 1})
	if len(got) != 1 || got[0] != "maxKeyAge" {
		t.Fatalf("Unknown = %v; want [maxKeyAge]", got)
	}
}

// manyAccountStages is a stage of n single accounts.
func manyAccountStages(n int) []any {
	var st []any
	for i := range n {
		st = append(st, fmt.Sprintf("%012d", 100000000000+i))
	}
	return []any{st}
}

// TestCheckUnknown: a key keyrotor does not read is refused, naming the
// key it is closest to; the CDK's own keys pass.
func TestCheckUnknown(t *testing.T) {
	tests := []struct {
		name string
		ctx  map[string]any
		want string // a fragment of the error; "" for none
	}{
		{"known keys", map[string]any{"graceDays": 3, "senderAddress": "a@b.c", "hubAccount": "123456789012", "allowNoAdmins": true}, ""},
		{"the CDK's own keys", map[string]any{"@aws-cdk/core:newStyleStackSynthesis": true, "aws:cdk:enable-path-metadata": true, "cdk-assets": 1,
			"availability-zones:account=1:region=x": []any{}, "acknowledged-issue-numbers": []any{}, "keyrotor:deploy": "true"}, ""},
		{"lower case", map[string]any{"gracedays": 3}, `context gracedays="3": keyrotor reads no such setting and would use the default; did you mean "graceDays"?`},
		{"a typo", map[string]any{"adminEmail": "a@b.c"}, `did you mean "adminEmails"?`},
		{"nothing near", map[string]any{"colour": "blue"}, `context colour="blue": keyrotor reads no such setting and would use the default; the settings are listed in docs/deploying.md`},
		{"several", map[string]any{"gracedays": 3, "holddays": 4}, "(2 unknown keys: gracedays, holddays)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckUnknown(tt.ctx)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckUnknown(%v) = %v; want nil", tt.ctx, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckUnknown(%v) = %v; want %q", tt.ctx, err, tt.want)
			}
		})
	}
}

// TestDeployable: a setup that cannot notify anyone is refused, naming the
// key and the fix, unless acknowledged (allowNoAdmins) or meant for local
// runs (localRun).
func TestDeployable(t *testing.T) {
	good := map[string]any{"senderAddress": "keyrotor@corp.io", "adminEmails": "sec@corp.io"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		ctx     map[string]any
		wantKey string
		want    string
	}{
		{"set up", good, "", ""},
		{"no sender", with("senderAddress", nil), "senderAddress", "no sender: owners would get no mail"},
		{"empty sender", with("senderAddress", ""), "senderAddress", "set it to an address of your domain verified in SES"},
		{"shipped placeholder", with("senderAddress", "keyrotor@example.com"), "senderAddress", `senderAddress="keyrotor@example.com": a placeholder`},
		{"invalid domain", with("senderAddress", "me@corp.invalid"), "senderAddress", "a placeholder"},
		{"no admins", with("adminEmails", []any{}), "adminEmails", "set allowNoAdmins=true"},
		{"admins unset", with("adminEmails", nil), "adminEmails", "nobody would hear of a failed run"},
		{"placeholder admin", with("adminEmails", "sec@example.org"), "adminEmails", "a placeholder address"},
		{"no admins, acknowledged", with("adminEmails", []any{}, "allowNoAdmins", true), "", ""},
		{"acknowledgement not a bool", with("allowNoAdmins", "yes please"), "allowNoAdmins", "want true or false"},
		{"local run", map[string]any{"senderAddress": "keyrotor@example.com", "adminEmails": []any{}, "localRun": true}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromContext(func(k string) (any, bool) { v, ok := tt.ctx[k]; return v, ok })
			if err == nil {
				err = s.Deployable()
			}
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Deployable(%v) = %v; want nil", tt.ctx, err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Key != tt.wantKey || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Deployable(%v) = %v; want one naming %s and saying %q", tt.ctx, err, tt.wantKey, tt.want)
			}
		})
	}
}

// TestGraceErrorInDays: the grace period is set in days and the error
// shows days, not a Go duration.
func TestGraceErrorInDays(t *testing.T) {
	ctx := map[string]any{"maxKeyAgeDays": "5"}
	_, err := FromContext(func(k string) (any, bool) { v, ok := ctx[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), `graceDays="7"`) || strings.Contains(err.Error(), "168h") {
		t.Fatalf("FromContext(%v) = %v; want graceDays=\"7\"", ctx, err)
	}
}
