package volume

import (
	"context"
	"fmt"
	"time"
)

// How a volume pushed on changes waits: a push starts once nothing has
// changed for changeQuiet, or changeMaxDelay after the first change when
// changes never stop.
const (
	changeQuiet    = time.Second
	changeMaxDelay = 30 * time.Second
)

// changeWatch is the watch of a volume pushed on changes.
type changeWatch struct {
	w      *watcher
	cancel context.CancelFunc
	done   chan struct{} // closed when its pusher has returned
}

// startWatch starts watching the volume called name, pushing it on
// changes until stopWatch.
func (s *Set) startWatch(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watches[name] != nil {
		return nil
	}
	dir, err := s.open(name)
	if err != nil {
		return err
	}
	w, err := watch(dir)
	if err != nil {
		return fmt.Errorf("volume %s: push_on=changes: %w", name, err)
	}
	// stopWatch ends the waits; a push under way runs on under ctx, to
	// its end and its report.
	waits, cancel := context.WithCancel(ctx)
	cw := &changeWatch{w: w, cancel: cancel, done: make(chan struct{})}
	s.watches[name] = cw
	go func() {
		defer close(cw.done)
		s.pushOnChanges(waits, ctx, name, w)
	}()
	return nil
}

// stopWatch ends the watch of the volume called name, if it has one,
// once a push under way is over.
func (s *Set) stopWatch(name string) error {
	s.mu.Lock()
	cw := s.watches[name]
	delete(s.watches, name)
	s.mu.Unlock()
	if cw == nil {
		return nil
	}
	cw.cancel()
	<-cw.done
	if err := cw.w.stop(); err != nil {
		return fmt.Errorf("volume %s: push_on=changes: %w", name, err)
	}
	return nil
}

// pushOnChanges pushes the volume called name after each burst of
// changes w sees, leaving out the files being written, until waits ends;
// a push runs under ctx, so that one under way when waits ends finishes.
// A failed push is logged: the next change, or the final push, sends
// what it could not.
func (s *Set) pushOnChanges(waits, ctx context.Context, name string, w *watcher) {
	clock := s.opts.Clock
	for {
		select {
		case <-waits.Done():
			return
		case <-w.changed:
		}
		first := clock.Now()
	quiet:
		for {
			if clock.Sleep(waits, changeQuiet) != nil {
				return
			}
			select {
			case <-w.changed:
				if clock.Now().Sub(first) < changeMaxDelay {
					continue
				}
			default:
			}
			break quiet
		}
		if err := s.pushAt(ctx, name, "on changes", false, w.writers()); err != nil && ctx.Err() == nil {
			fmt.Fprintf(s.opts.Log, "%v (the next change, or the push at pipeline_end, sends what it could not)\n", err)
		}
	}
}
