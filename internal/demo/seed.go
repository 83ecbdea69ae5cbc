// Package demo seeds an emulated account that shows what keyrotor does:
// keys past the max age in daily use, unused keys, an exempt user, a user
// with two keys, a user without an owner e-mail tag, and users who are fine.
package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Clock moves the emulator's clock (motoserver.Server.SetClock).
type Clock func(offset time.Duration) error

// User is one seeded user and what the demo expects keyrotor to do.
type User struct {
	Name    string
	Email   string
	Expect  string // rotate, retire, exempt, blocked, ok
	KeyAge  int    // days
	UsedAgo int    // days; -1: never
}

// Users is the demo account: 40 users.
func Users() []User {
	var us []User
	teams := []string{"payments", "search", "data", "web", "mobile"}
	for i := range 24 {
		n := fmt.Sprintf("%s-deploy-%02d", teams[i%len(teams)], i)
		us = append(us, User{Name: n, Email: n + "@example.com", Expect: "rotate", KeyAge: 95 + i*13, UsedAgo: 1 + i%5})
	}
	us = append(us,
		User{Name: "ci-runner", Expect: "rotate", KeyAge: 200, UsedAgo: 0}, // no owner e-mail tag: admins only
		User{Name: "legacy-batch", Email: "batch@example.com", Expect: "retire", KeyAge: 500, UsedAgo: 120},
		User{Name: "old-intern", Email: "intern@example.com", Expect: "retire", KeyAge: 300, UsedAgo: -1},
		User{Name: "reporting-cron", Email: "reports@example.com", Expect: "retire", KeyAge: 70, UsedAgo: 50},
		User{Name: "break-glass", Email: "security@example.com", Expect: "exempt", KeyAge: 400, UsedAgo: 30},
		User{Name: "two-keys", Email: "two@example.com", Expect: "blocked", KeyAge: 150, UsedAgo: 2},
	)
	for i := range 10 {
		n := fmt.Sprintf("fresh-%02d", i)
		us = append(us, User{Name: n, Email: n + "@example.com", Expect: "ok", KeyAge: 5 + i*8, UsedAgo: 0})
	}
	return us
}

// IAM is the part of IAM the seeder calls.
type IAM interface {
	CreateUser(ctx context.Context, in *iam.CreateUserInput, optFns ...func(*iam.Options)) (*iam.CreateUserOutput, error)
	CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error)
}

// Seed creates Users() in the account behind api, dating keys and uses with
// clock, and returns the clock to real time.
func Seed(ctx context.Context, api IAM, base aws.Config, clock Clock) ([]User, error) {
	users := Users()
	defer clock(0)
	for _, u := range users {
		if err := clock(-time.Duration(u.KeyAge) * 24 * time.Hour); err != nil {
			return nil, err
		}
		in := &iam.CreateUserInput{UserName: aws.String(u.Name)}
		if u.Email != "" {
			in.Tags = append(in.Tags, types.Tag{Key: aws.String("email"), Value: aws.String(u.Email)})
		}
		if u.Expect == "exempt" {
			in.Tags = append(in.Tags, types.Tag{Key: aws.String("keyrotor:exempt"), Value: aws.String("true")})
		}
		if _, err := api.CreateUser(ctx, in); err != nil {
			return nil, fmt.Errorf("create user %s: %w", u.Name, err)
		}
		k, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(u.Name)})
		if err != nil {
			return nil, fmt.Errorf("create key for %s: %w", u.Name, err)
		}
		if u.UsedAgo >= 0 {
			if err := clock(-time.Duration(u.UsedAgo) * 24 * time.Hour); err != nil {
				return nil, err
			}
			if err := use(ctx, base, aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)); err != nil {
				return nil, err
			}
		}
		if u.Expect == "blocked" {
			if _, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(u.Name)}); err != nil {
				return nil, fmt.Errorf("create second key for %s: %w", u.Name, err)
			}
		}
	}
	return users, clock(0)
}

// use makes one signed call with the key so IAM records it as used.
func use(ctx context.Context, base aws.Config, id, secret string) error {
	cfg := base.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		return fmt.Errorf("use key %s: %w", id, err)
	}
	return nil
}
