// Package motoserver starts and stops moto_server, the emulated AWS that
// keyrotor's integration tests, demo and benchmarks run against.
package motoserver

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

//go:embed clock.py
var clockPy []byte

// Server is a running moto_server on a loopback port.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	done     chan struct{}
	clock    string // file holding the clock offset; "" without clock support
	dir      string
}

// Start launches moto_server on a free loopback port and waits until it
// answers. logPath, when not empty, receives its output.
func Start(logPath string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyrotor-moto-")
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{}), dir: dir}
	var cmd *exec.Cmd
	// Prefer moto with a settable clock (python3 that imports moto); fall
	// back to the plain moto_server command.
	if py, perr := exec.LookPath("python3"); perr == nil && exec.Command(py, "-c", "import moto.server").Run() == nil {
		script := filepath.Join(dir, "clock.py")
		s.clock = filepath.Join(dir, "clock")
		if err := os.WriteFile(script, clockPy, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.clock, []byte("0"), 0o644); err != nil {
			return nil, err
		}
		cmd = exec.Command(py, script, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
		cmd.Env = append(os.Environ(), "KEYROTOR_MOTO_CLOCK="+s.clock)
	} else {
		bin, err := exec.LookPath("moto_server")
		if err != nil {
			return nil, errors.New("moto_server not found on PATH: run `make deps` (python3 -m pip install 'moto[server]')")
		}
		cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	}
	s.cmd = cmd
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if logPath != "" {
		f, ferr := os.Create(logPath)
		if ferr != nil {
			return nil, ferr
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, errors.New("moto_server exited during start-up")
		default:
		}
		resp, err := http.Get(s.Endpoint + "/moto-api/data.json")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("moto_server did not answer within %s", startTimeout)
}

// startTimeout bounds moto_server's start-up. It imports every service's
// models first: seconds on an idle machine, over 30 s when make test runs
// many packages (each with its own moto_server) on two cores.
const startTimeout = 2 * time.Minute

// Reset empties every emulated service.
func (s *Server) Reset(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/moto-api/reset", strings.NewReader(""))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	resp.Body.Close()
	return nil
}

// SetClock moves the emulator's clock by offset from the real time (for
// example -200 days to create keys that are 200 days old). Zero restores it.
func (s *Server) SetClock(offset time.Duration) error {
	if s.clock == "" {
		return errors.New("this moto_server has no settable clock (python3 cannot import moto)")
	}
	return os.WriteFile(s.clock, []byte(fmt.Sprintf("%f", offset.Seconds())), 0o644)
}

// Stop ends moto_server and its process group.
func (s *Server) Stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
