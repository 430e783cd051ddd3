package pid1

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// Reaper waits for every child of the process, as an init must: orphans
// re-parented to PID 1 are reaped and forgotten, while the exit status of a
// process started with Run goes back to its caller.
//
// exec.Cmd.Wait cannot be used next to such a reaper (whichever calls wait
// first takes the status), so every process PID 1 starts goes through Run.
type Reaper struct {
	mu      sync.Mutex
	waiting map[int]chan unix.WaitStatus
	sigs    chan os.Signal
	done    chan struct{}
}

// NewReaper starts reaping children on SIGCHLD. Stop ends it.
func NewReaper() *Reaper {
	r := &Reaper{
		waiting: make(map[int]chan unix.WaitStatus),
		sigs:    make(chan os.Signal, 1),
		done:    make(chan struct{}),
	}
	signal.Notify(r.sigs, unix.SIGCHLD)
	go r.loop()
	return r
}

// Stop ends reaping.
func (r *Reaper) Stop() {
	signal.Stop(r.sigs)
	close(r.done)
}

func (r *Reaper) loop() {
	for {
		select {
		case <-r.done:
			return
		case <-r.sigs:
			r.Reap()
		}
	}
}

// Reap collects every child that has exited, without blocking.
func (r *Reaper) Reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if ch, ok := r.waiting[pid]; ok {
			ch <- ws
			delete(r.waiting, pid)
		}
	}
}

// Start starts cmd and returns a function that waits for it to end and
// gives its exit status: the exit code, or 128+N when killed by signal N.
// cmd's stdio must be nil or *os.File (no copying goroutines).
func (r *Reaper) Start(cmd *exec.Cmd) (wait func() int, err error) {
	// Holding the lock across Start means the child cannot be reaped
	// before it is registered.
	r.mu.Lock()
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiting[cmd.Process.Pid] = ch
	r.mu.Unlock()
	// A SIGCHLD may have been merged with one already handled.
	go r.Reap()
	return func() int {
		ws := <-ch
		_ = cmd.Process.Release()
		return ExitCode(ws)
	}, nil
}

// Run starts cmd and waits for it; see Start.
func (r *Reaper) Run(cmd *exec.Cmd) (int, error) {
	wait, err := r.Start(cmd)
	if err != nil {
		return -1, err
	}
	return wait(), nil
}

// ExitCode turns a wait status into a shell-style exit status.
func ExitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	default:
		return 255
	}
}
