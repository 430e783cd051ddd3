package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ociboot/ociboot/internal/image"
	"golang.org/x/sys/unix"
)

// barRedrawInterval bounds how often the bars are redrawn.
const barRedrawInterval = 100 * time.Millisecond

// barRenderer draws one progress bar per layer on a terminal, redrawing
// the block of lines in place with ANSI cursor movements. Its update
// method is an image.UnpackOptions.Progress.
type barRenderer struct {
	w     io.Writer
	width int

	mu     sync.Mutex
	layers []image.LayerProgress
	drawn  int // lines drawn last time
	last   time.Time
}

func newBarRenderer(w io.Writer, width int) *barRenderer {
	return &barRenderer{w: w, width: width}
}

// update records a layer's progress and redraws, at most every
// barRedrawInterval unless a layer changed state.
func (b *barRenderer) update(p image.LayerProgress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.layers) < p.Count {
		b.layers = append(b.layers, image.LayerProgress{Index: len(b.layers) + 1, Count: p.Count, Size: -1})
	}
	if p.Index < 1 || p.Index > len(b.layers) {
		return
	}
	changed := b.layers[p.Index-1].State != p.State
	b.layers[p.Index-1] = p
	if changed || time.Since(b.last) >= barRedrawInterval {
		b.draw()
	}
}

// finish draws the final state.
func (b *barRenderer) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.layers) > 0 {
		b.draw()
	}
}

func (b *barRenderer) draw() {
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.drawn) // back to the first bar
	}
	for _, l := range b.layers {
		sb.WriteString("\r\x1b[2K")
		sb.WriteString(barLine(l, b.width))
		sb.WriteByte('\n')
	}
	b.drawn = len(b.layers)
	b.last = time.Now()
	_, _ = io.WriteString(b.w, sb.String())
}

// barLine renders one layer in at most width columns:
//
//	layer 1/3 sha256:0123456789ab [=======-----      ]  49.4 MB  applying 81 MB/s
//
// '=' is decompressed (applied, for the layer being applied), '-' fetched and waiting.
func barLine(l image.LayerProgress, width int) string {
	head := fmt.Sprintf("layer %d/%d %.19s ", l.Index, l.Count, l.Digest)
	size := l.Size
	if size <= 0 {
		size = max(l.Fetched, 1)
	}
	tail := fmt.Sprintf(" %8s  %s", sizeText(l.Size), l.State)
	switch l.State {
	case image.LayerFetching, image.LayerApplying:
		if secs := time.Since(l.Start).Seconds(); secs > 0 && l.Fetched > 0 {
			tail += " " + sizeText(int64(float64(l.Fetched)/secs)) + "/s"
		}
	case image.LayerFailed:
		tail = " failed"
	}
	barWidth := width - len(head) - len(tail) - 2
	if barWidth < 10 { // no room for a bar
		s := head + strings.TrimSpace(tail)
		return s[:min(len(s), max(width, 1))]
	}
	applied := int(int64(barWidth) * min(l.Decompressed, size) / size)
	fetched := int(int64(barWidth) * min(l.Fetched, size) / size)
	if l.State == image.LayerDone {
		applied, fetched = barWidth, barWidth
	}
	fetched = max(fetched, applied)
	bar := strings.Repeat("=", applied) + strings.Repeat("-", fetched-applied) + strings.Repeat(" ", barWidth-fetched)
	return head + "[" + bar + "]" + tail
}

// sizeText prints a byte count in a few columns.
func sizeText(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
}

// terminalWidth returns w's width in columns, 80 if it cannot tell.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 80
}
