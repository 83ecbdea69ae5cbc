// Command echofn is a tiny Lambda for the local server's tests: it echoes
// its input, returns a named error, panics or exits, as asked.
package main

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/keyrotor/keyrotor/shared/failures"
)

type in struct {
	Do    string `json:"do"`
	Value string `json:"value"`
}

func main() {
	lambda.Start(func(ctx context.Context, e in) (map[string]string, error) {
		switch e.Do {
		case "throttle":
			return nil, &failures.ThrottlingError{Op: "ListAccessKeys", Msg: "Rate exceeded"}
		case "panic":
			panic("boom")
		case "exit":
			os.Exit(3)
		case "sleep":
			time.Sleep(5 * time.Second)
		}
		return map[string]string{"echo": e.Value, "env": os.Getenv("ECHO_ENV")}, nil
	})
}
