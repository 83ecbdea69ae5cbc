// Command cmd is `make bench`: it measures keyrotor against moto_server on
// loopback and prints one table, saved as JSON under build/bench/.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keyrotor/keyrotor/internal/bench"
	"github.com/keyrotor/keyrotor/internal/motoserver"
	"github.com/keyrotor/keyrotor/shared/awsconf"
)

func main() {
	sizes := flag.String("users", "1000,10000", "discovery: account sizes (5% due)")
	due := flag.Int("due", 200, "full local run: due users")
	out := flag.String("out", "build/bench", "where the JSON goes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *sizes, *due, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, sizes string, due int, outDir string) error {
	srv, err := motoserver.Start(filepath.Join(os.TempDir(), "keyrotor-bench-moto.log"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: srv.Endpoint, Region: "us-east-1", StaticTestCredentials: true})
	if err != nil {
		return err
	}
	rep := bench.NewReport()
	for _, s := range strings.Split(sizes, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--users: %q is not a number", s)
		}
		srv.Reset(ctx)
		fmt.Fprintf(os.Stderr, "seeding %d users...\n", n)
		nDue, err := bench.SeedScale(ctx, cfg, srv.SetClock, n, 5)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "discovery over %d users (%d due)...\n", n, nDue)
		d, err := bench.MeasureDiscovery(ctx, cfg, n, nDue)
		if err != nil {
			return err
		}
		if d.Baseline, err = bench.MeasureBaseline(ctx, cfg); err != nil {
			return err
		}
		rep.Discovery = append(rep.Discovery, d)
	}
	template, bin := "cdk.out/KeyRotor.template.json", "build/host"
	for _, throttle := range []float64{0, 0.3} {
		srv.Reset(ctx)
		fmt.Fprintf(os.Stderr, "full local run, %d due users, %.0f%% IAM throttling...\n", due, throttle*100)
		work := filepath.Join(outDir, fmt.Sprintf("run-throttle-%.0f", throttle*100))
		os.RemoveAll(work)
		r, res, err := bench.FullRun(ctx, cfg, srv.Endpoint, srv.SetClock, template, bin, work, due, throttle)
		if err != nil {
			return err
		}
		if throttle == 0 {
			rep.Run = r
			rep.Binaries = bench.Binaries("build", res)
		} else {
			rep.Throttled = r
		}
	}
	rep.Print(os.Stdout)
	path, err := rep.Save(outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "\nsaved %s\n", path)
	return nil
}
