package event

import (
	"encoding/json"
	"fmt"
	"time"
)

// Identity says which machine and boot the events are of: the kernel's
// boot ID, then, as the boot learns them, the host name and the MAC
// address of the link the machine booted from. A field left "" keeps the
// value an earlier Identity gave.
type Identity struct {
	BootID, MAC, Host string
}

// ClockSet says the wall clock has been set (by NTP): from now on, times
// of day are right.
type ClockSet struct{}

func (Identity) event() {}
func (ClockSet) event() {}

// Record is an event as it travels (ociboot.report=) and is kept (`ociboot
// serve --state`): one JSON object per line. Type names the event;
// fields an event type has not are left out.
type Record struct {
	Boot string `json:"boot"`
	MAC  string `json:"mac,omitempty"`
	Host string `json:"host,omitempty"`
	// Seq counts the boot's events from 1, in the order they happened.
	Seq uint64 `json:"seq"`
	// Mono is the time since the kernel started (CLOCK_BOOTTIME), in
	// seconds; Wall the time of day then, once the clock was set.
	Mono float64    `json:"mono"`
	Wall *time.Time `json:"wall,omitempty"`

	Type     string   `json:"type"`
	Stage    string   `json:"stage,omitempty"`
	Job      string   `json:"job,omitempty"`
	Text     string   `json:"text,omitempty"`
	Image    string   `json:"image,omitempty"`
	ID       string   `json:"id,omitempty"`
	Error    string   `json:"error,omitempty"`
	Status   *int     `json:"status,omitempty"`
	Stopped  bool     `json:"stopped,omitempty"`
	Took     *float64 `json:"took,omitempty"` // seconds
	Action   string   `json:"action,omitempty"`
	Delay    *float64 `json:"delay,omitempty"` // seconds
	Index    int      `json:"index,omitempty"`
	Count    int      `json:"count,omitempty"`
	Digest   string   `json:"digest,omitempty"`
	Size     *int64   `json:"size,omitempty"`
	Fetched  int64    `json:"fetched,omitempty"`
	Unpacked int64    `json:"unpacked,omitempty"`
	State    string   `json:"state,omitempty"`
}

// Record types.
const (
	TypeStageStart          = "stage_start"
	TypeStageEnd            = "stage_end"
	TypeMessage             = "message"
	TypePull                = "pull"
	TypeLayer               = "layer"
	TypeContainerStart      = "container_start"
	TypeContainerBackground = "container_background"
	TypeContainerSkipped    = "container_skipped"
	TypeContainerFailed     = "container_failed"
	TypeContainerExit       = "container_exit"
	TypePipelineStatus      = "pipeline_status"
	TypeEndAction           = "end_action"
	TypeIdentity            = "identity"
	TypeClockSet            = "clock_set"
)

// NewRecord returns e as a record, without its boot, sequence number and
// times, which the caller stamps. Errors become their text.
func NewRecord(e Event) Record {
	seconds := func(d time.Duration) *float64 { s := d.Seconds(); return &s }
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	switch e := e.(type) {
	case StageStart:
		return Record{Type: TypeStageStart, Stage: e.Stage}
	case StageEnd:
		return Record{Type: TypeStageEnd, Stage: e.Stage, Took: seconds(e.Took), Error: errText(e.Err)}
	case Message:
		return Record{Type: TypeMessage, Stage: e.Stage, Text: e.Text}
	case Pull:
		return Record{Type: TypePull, Job: e.Job, Image: e.Image}
	case Layer:
		size := e.Size
		return Record{Type: TypeLayer, Job: e.Job, Index: e.Index, Count: e.Count, Digest: e.Digest, Size: &size,
			Fetched: e.Fetched, Unpacked: e.Unpacked, State: e.State, Error: errText(e.Err)}
	case ContainerStart:
		return Record{Type: TypeContainerStart, Job: e.Job, ID: e.ID, Took: seconds(e.Prepared)}
	case ContainerBackground:
		return Record{Type: TypeContainerBackground, Job: e.Job}
	case ContainerSkipped:
		return Record{Type: TypeContainerSkipped, Job: e.Job, Text: e.Why}
	case ContainerFailed:
		return Record{Type: TypeContainerFailed, Job: e.Job, Error: errText(e.Err)}
	case ContainerExit:
		status := e.Status
		return Record{Type: TypeContainerExit, Job: e.Job, Status: &status, Stopped: e.Stopped}
	case PipelineStatus:
		status := e.Status
		return Record{Type: TypePipelineStatus, Status: &status}
	case EndAction:
		return Record{Type: TypeEndAction, Action: e.Action, Delay: seconds(e.Delay)}
	case Identity:
		return Record{Type: TypeIdentity, Boot: e.BootID, MAC: e.MAC, Host: e.Host}
	case ClockSet:
		return Record{Type: TypeClockSet}
	}
	return Record{Type: fmt.Sprintf("%T", e)}
}

// ParseRecord reads one line of records, checking what every record
// must have.
func ParseRecord(line []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("not a JSON event: %w", err)
	}
	switch {
	case r.Boot == "":
		return r, fmt.Errorf("event %d has no boot ID", r.Seq)
	case r.Seq == 0:
		return r, fmt.Errorf("event of boot %s has no sequence number (they count from 1)", r.Boot)
	case r.Type == "":
		return r, fmt.Errorf("event %d of boot %s has no type", r.Seq, r.Boot)
	}
	return r, nil
}
