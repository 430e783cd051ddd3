// Package hotplug follows the kernel's uevents while the machine runs,
// from a raw NETLINK_KOBJECT_UEVENT socket: it loads the drivers of the
// devices that appear after coldplug (USB devices behind a hub, the disks
// behind a SCSI host, slow controllers), and tells the stages waiting for
// a disk that one may have come, so that they look again at once.
package hotplug

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/ociboot/ociboot/internal/kmod"
)

// Loader loads the drivers modaliases ask for, each once
// (kmod.Drivers).
type Loader interface {
	Load(aliases []string) ([]kmod.Module, error)
}

// Options says what the Listener does with what it hears.
type Options struct {
	// Drivers loads the drivers of added devices; nil loads none.
	Drivers Loader
	// Report, when set, is told of the modules loaded for a device, and
	// of those that failed to; and, with an empty Event, of the error
	// that ended the listening, but for Stop.
	Report func(ev Event, loaded []kmod.Module, took time.Duration, err error)
	// Lost, when set, is called when events were lost: what they said
	// must be looked for in /sys again (a coldplug).
	Lost func()
}

// source is where events come from: a Conn, or a test's.
type source interface {
	Read() (Event, error)
	Close() error
}

// Listener acts on the events of a Conn until stopped.
type Listener struct {
	src  source
	o    Options
	done chan struct{} // closed when the reading loop has ended
	wg   sync.WaitGroup

	mu    sync.Mutex
	added chan struct{}
}

// Listen acts on conn's events in the background, and owns conn from
// then on: open it before looking at what is present (coldplug), so that
// nothing added in between is missed.
func Listen(conn *Conn, o Options) *Listener { return listen(conn, o) }

func listen(src source, o Options) *Listener {
	l := &Listener{src: src, o: o, done: make(chan struct{}), added: make(chan struct{})}
	go l.loop()
	return l
}

// Added returns a channel closed when the next device is added: a waiter
// takes it, looks, and waits on it to look again.
func (l *Listener) Added() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.added
}

// Stop closes the socket and waits for the drivers being loaded.
func (l *Listener) Stop() {
	l.src.Close()
	<-l.done
	l.wg.Wait()
}

// loop reads events until the source is closed. A device's drivers are
// loaded on a goroutine of their own: a driver's initialisation may take
// seconds, and the events after it must still be read.
func (l *Listener) loop() {
	defer close(l.done)
	for {
		ev, err := l.src.Read()
		if errors.Is(err, ErrOverflow) {
			if l.o.Lost != nil {
				l.wg.Add(1)
				go func() {
					defer l.wg.Done()
					l.o.Lost()
				}()
			}
			continue
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && l.o.Report != nil {
				l.o.Report(Event{}, nil, 0, err) // and events are followed no more
			}
			return
		}
		if ev.Action != "add" {
			continue
		}
		if ev.Modalias != "" && l.o.Drivers != nil {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				start := time.Now()
				mods, err := l.o.Drivers.Load([]string{ev.Modalias})
				if l.o.Report != nil && (len(mods) > 0 || err != nil) {
					l.o.Report(ev, mods, time.Since(start), err)
				}
			}()
		}
		l.mu.Lock()
		close(l.added)
		l.added = make(chan struct{})
		l.mu.Unlock()
	}
}
