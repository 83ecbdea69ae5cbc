package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/failures"
)

// Documents writes users' destination documents (delivery.Store).
type Documents interface {
	Put(ctx context.Context, account, user string, doc *delivery.Document, by string) error
}

var _ Documents = (*delivery.Store)(nil)

// SecretDescriber finds a hub secret a document names as a credential.
type SecretDescriber interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// UserGetter finds an IAM user, and a role (keyrotor's member role).
type UserGetter interface {
	GetUser(ctx context.Context, in *iam.GetUserInput, optFns ...func(*iam.Options)) (*iam.GetUserOutput, error)
	GetRole(ctx context.Context, in *iam.GetRoleInput, optFns ...func(*iam.Options)) (*iam.GetRoleOutput, error)
}

// SetDestinationsRequest is `keyrotor destinations set`.
type SetDestinationsRequest struct {
	Account  string // the user's account; "" is keyrotor's own
	User     string
	Document []byte // the document's JSON
	By       string // who sets it, for the stored document
	// Home is the caller's own account (keyrotor's, the hub): an AWS
	// destination in any other account needs keyrotor's member role there.
	Home string
	// Reach says how users reaches other accounts (for errors: the
	// --member-role flag).
	Reach string
}

// SetDestinations stores a user's destinations document once it is known
// to work: it parses (delivery.ParseDocument: a *delivery.FieldError naming
// the field and the fix), every credential it names is a secret in the hub
// (Secrets Manager DescribeSecret) and the user exists (IAM GetUser, in
// the user's account: users returns the client for an account, reaching it),
// and every other account an AWS destination is written in is reachable
// (users for that account). Nothing is
// written unless all hold; a refusal is a *RefusedError or the
// *delivery.FieldError.
func SetDestinations(ctx context.Context, docs Documents, hub SecretDescriber, users func(account string) (UserGetter, error), req SetDestinationsRequest) (*delivery.Document, error) {
	doc, err := delivery.ParseDocument(req.Document)
	if err != nil {
		return nil, err
	}
	for i, s := range doc.Destinations {
		if s.Credential == "" {
			continue
		}
		out, err := hub.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(s.Credential)})
		if failures.APICode(err) == "ResourceNotFoundException" {
			return nil, &RefusedError{fmt.Sprintf("destinations[%d].credential: no secret %q in keyrotor's account and region: "+
				"create it (Secrets Manager, the API token as its value) or correct the name", i, s.Credential)}
		}
		if err != nil {
			return nil, fmt.Errorf("destinations[%d].credential: describe secret %s: %w", i, s.Credential, err)
		}
		if out.DeletedDate != nil {
			return nil, &RefusedError{fmt.Sprintf("destinations[%d].credential: secret %q is scheduled for deletion (%s): "+
				"restore it (aws secretsmanager restore-secret) or name another", i, s.Credential, out.DeletedDate.UTC().Format(time.RFC3339))}
		}
	}
	// An AWS destination in another account than the user's: keyrotor must
	// reach that account (in organization mode, through its member role;
	// a single-account deployment has none). Whether the account is in the
	// deployment's scope is checked by find and deliver, which know it.
	for i, s := range doc.Destinations {
		account, from := s.AccountFor(req.Account)
		if account == "" || account == req.Account {
			continue
		}
		if from == "" {
			from = "account"
		}
		api, err := users(account)
		if err != nil {
			var ue *failures.AccountUnreachableError
			if errors.As(err, &ue) {
				return nil, &RefusedError{fmt.Sprintf("destinations[%d].%s: cannot reach account %s, where this destination is written (%s): %s; "+
					"or leave account out to write it in the user's own account", i, from, account, req.Reach, ue.Msg)}
			}
			return nil, fmt.Errorf("destinations[%d].%s: reach account %s: %w", i, from, account, err)
		}
		if account == req.Home {
			continue
		}
		// keyrotor writes there through its member role: the account's
		// member stack must be deployed.
		if _, err := api.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(config.MemberRoleName)}); failures.APICode(err) == "NoSuchEntity" {
			return nil, &RefusedError{fmt.Sprintf("destinations[%d].%s: keyrotor cannot write in account %s: its member role %s is not there "+
				"(the member stack is not deployed in that account: docs/organizations.md); or leave account out to write it in the user's own account", i, from, account, config.MemberRoleName)}
		} else if err != nil {
			return nil, fmt.Errorf("destinations[%d].%s: look for keyrotor's member role in account %s: %w", i, from, account, err)
		}
	}
	api, err := users(req.Account)
	if err != nil {
		return nil, err
	}
	if _, err := api.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(req.User)}); err != nil {
		if failures.APICode(err) == "NoSuchEntity" {
			return nil, &RefusedError{fmt.Sprintf("--user %s: no such IAM user in %s: name the user whose access key the destinations receive", req.User, inAccount(req.Account))}
		}
		return nil, fmt.Errorf("--user %s: find the user in %s: %w", req.User, inAccount(req.Account), err)
	}
	if err := docs.Put(ctx, req.Account, req.User, doc, req.By); err != nil {
		return nil, err
	}
	return doc, nil
}

func inAccount(account string) string {
	if account == "" {
		return "keyrotor's account"
	}
	return "account " + account
}

// WriteDestinations prints a stored document for people: who set it and
// when, whether it still validates, and the document.
func WriteDestinations(w io.Writer, e *delivery.Entry) error {
	by := e.By
	if by == "" {
		by = "unknown"
	}
	if _, err := fmt.Fprintf(w, "destinations of user %s (%s), updated %s by %s\n", e.User, inAccount(e.Account), e.UpdatedAt.UTC().Format(time.RFC3339), by); err != nil {
		return err
	}
	if e.Err != nil {
		if _, err := fmt.Fprintf(w, "NO LONGER VALID: %v: no destination receives the key until it is set again\n", e.Err); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	if err := json.Indent(&b, e.Raw, "", "  "); err != nil {
		_, err = fmt.Fprintf(w, "%s\n", e.Raw)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", b.Bytes())
	return err
}

// IsRefusal reports whether err refuses a request (the person must change
// it: exit 2) rather than fails it.
func IsRefusal(err error) bool {
	var r *RefusedError
	var f *delivery.FieldError
	return errors.As(err, &r) || errors.As(err, &f)
}
