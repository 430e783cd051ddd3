package boot

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"time"

	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/report"
)

// reportWait bounds the wait for the endpoint of ociboot.report to have
// every event before the machine powers off, reboots or hands over.
const reportWait = 10 * time.Second

// identify reports the kernel's boot ID, which names the boot in its
// events (a random one when the kernel's cannot be read).
func (s *state) identify() {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		s.say("reading the boot ID: %v (going on with a random one)", err)
		id = []byte(rand.Text())
	}
	s.events.Report(event.Identity{BootID: strings.TrimSpace(string(id))})
}

// startReport starts sending the boot's events to ociboot.report once
// the plan is final (extra_args_url may still set it) and the network is
// up; a final plan without it stops keeping them.
func (s *state) startReport(final bool) {
	if !final || s.plan == nil || s.reportStarted {
		return
	}
	if s.plan.Report == "" {
		s.reportStarted = true
		s.report.Discard()
		return
	}
	if s.network == nil {
		return
	}
	s.reportStarted = true
	client, err := fetch.New(fetch.Options{CACerts: s.plan.Registry.CACerts, Retry: fetch.Retry{Attempts: 1}})
	if err != nil {
		s.say("report: %v: events are not sent", err)
		s.report.Discard()
		return
	}
	// The sender outlives the stages' context, which ends when a
	// power-off is asked: the events of the shutdown go too.
	s.report.Start(context.Background(), report.Endpoint{URL: s.plan.Report, Client: client, Secrets: s.plan.Secrets()})
}

// flushReport waits, a bounded time, until ociboot.report's endpoint has
// every event so far, then stops the sending: the boot is about to power
// off, reboot or hand over, and nothing may be sent while it does.
func (s *state) flushReport() {
	ctx, cancel := context.WithTimeout(context.Background(), reportWait)
	defer cancel()
	defer s.report.Stop()
	if err := s.report.Flush(ctx); err != nil {
		s.say("report: %v", err)
		return
	}
	if st := s.report.Stats(); st.Requests > 0 {
		s.say("report: %d events sent in %d requests, %d bytes (%d before compression)", st.Events, st.Requests, st.Bytes, st.Raw)
	}
}
