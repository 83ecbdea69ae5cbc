package faultproxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// servicePrefixes maps a SigV4 signing name to its IAM service prefix
// where the two differ (most are the same: iam, sts, s3, sns, sqs,
// secretsmanager, dynamodb, kms, lambda, states; SES v1 and v2 both sign
// as and authorize under "ses").
var servicePrefixes = map[string]string{
	"email": "ses",
}

// actionNames maps "service:Operation" to the IAM action that authorizes
// it where the two differ (Service Authorization Reference, "Actions,
// resources, and condition keys" for each service:
// https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html).
var actionNames = map[string]string{
	"s3:ListObjectsV2":   "s3:ListBucket",
	"s3:ListObjects":     "s3:ListBucket",
	"s3:HeadObject":      "s3:GetObject",
	"s3:HeadBucket":      "s3:ListBucket",
	"s3:ListBuckets":     "s3:ListAllMyBuckets",
	"s3:DeleteObjects":   "s3:DeleteObject",
	"lambda:Invoke":      "lambda:InvokeFunction",
	"lambda:InvokeAsync": "lambda:InvokeFunction",
}

// Action names the IAM action that authorizes a call of operation op
// (as Call.Operation names it) to service (the signing name):
// "iam:ListAccessKeys", "secretsmanager:GetSecretValue",
// "dynamodb:PutItem", "kms:Decrypt", "ses:SendEmail" (SES v2's POST
// /v2/email/outbound-emails), "s3:PutObject", and "s3:ListBucket" for
// ListObjectsV2. It returns "" for an unsigned call or a REST call the
// proxy has no operation name for ("METHOD /path").
func Action(service, op string) string {
	if service == "" || op == "" || strings.ContainsAny(op, " /") {
		return ""
	}
	if p, ok := servicePrefixes[service]; ok {
		service = p
	}
	a := service + ":" + op
	if n, ok := actionNames[a]; ok {
		return n
	}
	return a
}

// WriteLog writes the calls logged so far (as Log returns them) to w, one
// JSON object a line: {"service","operation","n","fault","accessKeyId",
// "action"}.
func (p *Proxy) WriteLog(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, c := range p.Log() {
		if err := enc.Encode(c); err != nil {
			return fmt.Errorf("write call log: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write call log: %w", err)
	}
	return nil
}

// SaveLog writes the calls logged so far to the file at path as JSON
// lines (see WriteLog), replacing it.
func (p *Proxy) SaveLog(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save call log: %w", err)
	}
	if err := p.WriteLog(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save call log: %w", err)
	}
	return nil
}

// ReadLog reads calls written by WriteLog.
func ReadLog(r io.Reader) ([]Call, error) {
	var calls []Call
	dec := json.NewDecoder(r)
	for {
		var c Call
		err := dec.Decode(&c)
		if err == io.EOF {
			return calls, nil
		}
		if err != nil {
			return calls, fmt.Errorf("read call log: %w", err)
		}
		calls = append(calls, c)
	}
}
