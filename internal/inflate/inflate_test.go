package inflate

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// corpus returns inputs that make every kind of block: text with long
// and short matches, incompressible bytes (stored blocks), runs (distance
// 1 and overlapping copies), and sizes around the output buffer's.
func corpus() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	words := []string{"ociboot ", "boots ", "machines ", "into ", "containers ", "\n", "layer ", "sha256:", "0123456789abcdef"}
	var text bytes.Buffer
	for text.Len() < outSize*2+12345 {
		text.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(50) == 0 {
			text.Write(random[:rng.IntN(200)])
		}
	}
	var runs bytes.Buffer
	for runs.Len() < 200<<10 {
		b := byte(rng.IntN(4))
		n := rng.IntN(600)
		for range n {
			runs.WriteByte(b)
		}
		runs.WriteString("abcabcab"[:rng.IntN(8)])
	}
	return map[string][]byte{
		"empty":  {},
		"byte":   {'x'},
		"text":   text.Bytes(),
		"random": random,
		"runs":   runs.Bytes(),
	}
}

func gzipped(t testing.TB, data []byte, level int, header gzip.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Header = header
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decode(r io.Reader) ([]byte, error) {
	z, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(z)
}

func TestRoundTrip(t *testing.T) {
	levels := []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression}
	for name, data := range corpus() {
		for _, level := range levels {
			gz := gzipped(t, data, level, gzip.Header{})
			for _, reader := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{
				{"whole", func(r io.Reader) io.Reader { return r }},
				{"one-byte", iotest.OneByteReader},
				{"half", iotest.HalfReader},
			} {
				if reader.name != "whole" && len(data) > 100<<10 && level != flate.BestSpeed {
					continue // slow readers: one level is enough for big inputs
				}
				got, err := decode(reader.wrap(bytes.NewReader(gz)))
				if err != nil {
					t.Fatalf("%s, level %d, %s reads: %v", name, level, reader.name, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("%s, level %d, %s reads: got %d bytes that differ from the %d put in", name, level, reader.name, len(got), len(data))
				}
			}
		}
	}
}

func TestHeaderFieldsAndMembers(t *testing.T) {
	c := corpus()
	h := gzip.Header{Name: "layer.tar", Comment: "a comment", Extra: []byte("extra field")}
	stream := append(gzipped(t, c["text"][:5000], 6, h), gzipped(t, c["runs"][:7000], 1, gzip.Header{})...)
	got, err := decode(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, c["text"][:5000]...), c["runs"][:7000]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("two members: got %d bytes, want %d", len(got), len(want))
	}
	// FHCRC: compress/gzip does not write it; set the flag by hand and
	// add the header's CRC (its low 16 bits), then a wrong one.
	one := gzipped(t, []byte("hello"), 6, gzip.Header{})
	head := append([]byte{}, one[:10]...)
	head[3] |= 0x02
	sum := crc32.ChecksumIEEE(head)
	withCRC := append(append(head, byte(sum), byte(sum>>8)), one[10:]...)
	if got, err := decode(bytes.NewReader(withCRC)); err != nil || string(got) != "hello" {
		t.Fatalf("FHCRC member: %q, %v", got, err)
	}
	withCRC[10] ^= 1
	if _, err := decode(bytes.NewReader(withCRC)); !errors.Is(err, ErrHeader) {
		t.Fatalf("FHCRC member with a wrong CRC: %v, want ErrHeader", err)
	}
}

func TestWriteTo(t *testing.T) {
	data := corpus()["text"]
	z, err := NewReader(bytes.NewReader(gzipped(t, data, 6, gzip.Header{})))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	n, err := z.WriteTo(&b)
	if err != nil || n != int64(len(data)) || !bytes.Equal(b.Bytes(), data) {
		t.Fatalf("WriteTo: %d bytes, %v", n, err)
	}
}

func TestReset(t *testing.T) {
	c := corpus()
	z, err := NewReader(bytes.NewReader(gzipped(t, c["text"], 9, gzip.Header{})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, z); err != nil {
		t.Fatal(err)
	}
	if err := z.Reset(bytes.NewReader(gzipped(t, c["runs"], 1, gzip.Header{}))); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(z)
	if err != nil || !bytes.Equal(got, c["runs"]) {
		t.Fatalf("after Reset: %d bytes, %v", len(got), err)
	}
}

func TestBadInput(t *testing.T) {
	good := gzipped(t, corpus()["text"][:100000], 6, gzip.Header{})
	flip := func(i int, mask byte) []byte {
		b := append([]byte{}, good...)
		b[i] ^= mask
		return b
	}
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"not gzip", []byte("this is not gzip data at all"), ErrHeader},
		{"wrong method", flip(2, 0x01), ErrHeader},
		{"bad crc", flip(len(good)-6, 0x01), ErrChecksum},
		{"bad size", flip(len(good)-2, 0x01), ErrChecksum},
		{"trailing garbage", append(append([]byte{}, good...), "garbage!!!"...), ErrHeader},
		{"reserved block type", func() []byte { b := append([]byte{}, good...); b[10] |= 0x06; return b }(), nil},
	} {
		_, err := decode(bytes.NewReader(tc.input))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
		var ce *CorruptError
		if tc.want == nil && !errors.As(err, &ce) {
			t.Errorf("%s: error %v, want a CorruptError", tc.name, err)
		}
	}
	// Reserved flag bits are ignored, as compress/gzip ignores them.
	if got, err := decode(bytes.NewReader(flip(3, 0xe0))); err != nil || len(got) != 100000 {
		t.Errorf("reserved flags: %d bytes, %v; want the data", len(got), err)
	}
	// Every truncation fails: none may pass for a complete stream.
	for n := 0; n < len(good); n += 1 + n/50 {
		got, err := decode(bytes.NewReader(good[:n]))
		if err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error (%d bytes out)", n, len(good), len(got))
		}
		if n > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated to %d of %d bytes: %v, want unexpected EOF", n, len(good), err)
		}
	}
	// A read error is passed on.
	boom := errors.New("boom")
	_, err := decode(io.MultiReader(bytes.NewReader(good[:5000]), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("read error: got %v, want %v", err, boom)
	}
}

// FuzzReader checks the decoder against compress/gzip: the same output
// for any input compress/gzip accepts, and an error for any it refuses.
func FuzzReader(f *testing.F) {
	c := corpus()
	for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, 1, 6, 9} {
		f.Add(gzipped(f, c["text"][:3000], level, gzip.Header{}))
		f.Add(gzipped(f, c["runs"][:2000], level, gzip.Header{Name: "x"}))
	}
	f.Add(gzipped(f, nil, 6, gzip.Header{}))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var want []byte
		var wantErr error
		if zr, err := gzip.NewReader(bytes.NewReader(in)); err != nil {
			wantErr = err
		} else {
			want, wantErr = io.ReadAll(zr)
		}
		got, err := decode(bytes.NewReader(in))
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("compress/gzip: %v; inflate: %v", wantErr, err)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("outputs differ: %d bytes from compress/gzip, %d from inflate", len(want), len(got))
		}
	})
}
