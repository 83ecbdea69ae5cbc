package settings

import (
	"errors"
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
			return s.Schedule == "rate(1 day)" && s.FanOutConcurrency == 10000 && s.LambdaConcurrency == 10 && s.Config.GracePeriod == 7*24*time.Hour && s.Config.MaxKeyAgeDays == 90
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
		{"bad concurrency", map[string]any{"fanOutConcurrency": "0"}, "fanOutConcurrency", nil},
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

func TestUnknown(t *testing.T) {
	got := Unknown(map[string]any{"maxKeyAge": 1, "graceDays": 2, "@aws-cdk/core:foo": true, "aws:cdk:x": 1})
	if len(got) != 1 || got[0] != "maxKeyAge" {
		t.Fatalf("Unknown = %v; want [maxKeyAge]", got)
	}
}
