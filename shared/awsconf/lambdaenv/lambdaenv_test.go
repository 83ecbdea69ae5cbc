package lambdaenv

import "testing"

type opts struct{ endpoint *string }

// TestServiceEndpoint: AWS_ENDPOINT_URL_<SERVICE> sets that client's
// endpoint (local runs point Step Functions' API at the runner); without
// it the option changes nothing.
func TestServiceEndpoint(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"set", map[string]string{"AWS_ENDPOINT_URL_SFN": "http://127.0.0.1:9"}, "http://127.0.0.1:9"},
		{"other service", map[string]string{"AWS_ENDPOINT_URL_IAM": "http://127.0.0.1:9"}, ""},
		{"unset", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o opts
			ServiceEndpoint(func(k string) string { return tt.env[k] }, "SFN", func(o *opts, ep *string) { o.endpoint = ep })(&o)
			got := ""
			if o.endpoint != nil {
				got = *o.endpoint
			}
			if got != tt.want {
				t.Fatalf("ServiceEndpoint(%v) = %q; want %q", tt.env, got, tt.want)
			}
		})
	}
}
