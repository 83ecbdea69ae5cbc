package local

import "time"

// drain waits, up to timeout, until no function process holds an
// invocation. An execution that ends (a failed map aborts its other
// children) does not stop the Lambda invocations it started: in AWS they
// run to completion. Closing the server at once would kill them part-way
// (a mail sent and not yet recorded, say), which AWS never does.
func (s *Server) drain(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && s.busy() {
		time.Sleep(20 * time.Millisecond)
	}
}

// busy reports whether a function process is running an invocation.
func (s *Server) busy() bool {
	s.mu.Lock()
	fns := s.fns
	s.mu.Unlock()
	for _, rt := range fns {
		rt.mu.Lock()
		procs := make([]*process, 0, len(rt.procs))
		for p := range rt.procs {
			procs = append(procs, p)
		}
		rt.mu.Unlock()
		for _, p := range procs {
			p.mu.Lock()
			held := p.current != nil
			p.mu.Unlock()
			if held {
				return true
			}
		}
	}
	return false
}
