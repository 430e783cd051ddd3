package timeline

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
)

// Layout of the picture, in pixels.
const (
	svgAxis   = 1200 // the width of the time axis
	svgMargin = 20
	svgRow    = 20
	svgBar    = 16
	svgTop    = 50 // room for the title and the second marks
)

// svgStyle colours the spans by kind.
const svgStyle = `text { font: 12px sans-serif; fill: #222 }
.title { font-size: 15px; font-weight: bold }
.tick { stroke: #ddd } .ticklabel { fill: #888; font-size: 10px }
rect.kernel { fill: #b0b0b0 } rect.stage { fill: #4c78a8 } rect.pull { fill: #f2b447 }
rect.container { fill: #54a24b } rect.fetch { fill: #e45756 } rect.unpack { fill: #b279a2 }
rect.open { fill-opacity: 0.5 }`

// SVG draws the timeline: a row per span, in the order they started, on
// one time axis, each box with its name and duration; a box's
// data-start and data-end give its times in seconds since boot.
func (t Timeline) SVG(w io.Writer) error {
	scale := svgAxis / math.Max(t.End, 1) // pixels per second
	height := svgTop + len(t.Spans)*svgRow + svgMargin
	width := svgAxis + 2*svgMargin
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">
<style>%s</style>
<rect width="100%%" height="100%%" fill="white"/>
`, width, height, width, height, svgStyle)
	title := fmt.Sprintf("boot %s: %.2f s", t.Boot, t.End)
	if t.Boot == "" {
		title = fmt.Sprintf("boot: %.2f s", t.End)
	}
	fmt.Fprintf(bw, `<text class="title" x="%d" y="20">%s</text>`+"\n", svgMargin, escape(title))
	// The legend, right of the title.
	for i, kind := range []string{Kernel, Stage, Pull, Fetch, Unpack, Container} {
		x := svgMargin + svgAxis - (6-i)*95
		fmt.Fprintf(bw, `<rect class="%s" x="%d" y="8" width="12" height="12"/><text x="%d" y="19">%s</text>`+"\n", kind, x, x+16, kind)
	}
	step := tickStep(t.End)
	for s := 0.0; s <= t.End+1e-9; s += step {
		x := svgMargin + s*scale
		fmt.Fprintf(bw, `<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/><text class="ticklabel" x="%.1f" y="%d">%gs</text>`+"\n",
			x, svgTop-12, x, height-svgMargin, x+2, svgTop-4, s)
	}
	for i, s := range t.Spans {
		x := svgMargin + s.Start*scale
		y := svgTop + i*svgRow
		wd := math.Max(s.Duration()*scale, 1)
		class := s.Kind
		if s.Open {
			class += " open"
		}
		label := fmt.Sprintf("%s %s", s.Name, seconds(s.Duration()))
		if s.Kind != Stage && s.Kind != Kernel {
			label = s.Kind + " " + label
		}
		fmt.Fprintf(bw, `<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%d" data-kind="%s" data-name="%s" data-start="%.3f" data-end="%.3f"><title>%s %s</title></rect>`+"\n",
			class, x, y, wd, svgBar, s.Kind, escape(s.Name), s.Start, s.End, s.Kind, escape(label))
		// The label goes right of the box, or left of it near the end.
		if x+wd < svgMargin+0.6*svgAxis {
			fmt.Fprintf(bw, `<text x="%.1f" y="%d">%s</text>`+"\n", x+wd+4, y+svgBar-4, escape(label))
		} else {
			fmt.Fprintf(bw, `<text x="%.1f" y="%d" text-anchor="end">%s</text>`+"\n", x-4, y+svgBar-4, escape(label))
		}
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// tickStep is the interval of the second marks: about 10 to 30 of them.
func tickStep(total float64) float64 {
	for _, s := range []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600} {
		if total/s <= 30 {
			return s
		}
	}
	return 1800
}

func seconds(d float64) string {
	if d < 1 {
		return fmt.Sprintf("%.0f ms", d*1000)
	}
	return fmt.Sprintf("%.2f s", d)
}

func escape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
