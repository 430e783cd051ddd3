package image

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/registrytest"
)

// TestPulledLayersAreMarked checks what decides whether Unpack hashes a
// layer: the Puller's layers are marked as checked by the registry
// client; a layer from anywhere else is not.
func TestPulledLayersAreMarked(t *testing.T) {
	reg := registrytest.Start(t)
	layer := static.NewLayer([]byte("not even a tar"), types.OCIUncompressedLayer)
	ref := registrytest.Push(t, reg, "test/verify:1", registrytest.Image(t, v1.Config{}, layer))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := Pull(ctx, ref, PullOptions{Insecure: []string{reg.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := layers[0].(remoteLayer); !ok || len(layers) != 1 {
		t.Errorf("a pulled image's layers %T are not marked as remote", layers)
	}
	if _, ok := any(layer).(remoteLayer); ok {
		t.Error("a static layer is marked as remote")
	}
}

func TestChunkPoolKeepsTheReserveForUrgentPipes(t *testing.T) {
	p := newChunkPool(16, 4, 2)
	var urgent, normal atomic.Bool
	urgent.Store(true)
	ctx := context.Background()
	var held [][]byte
	for range 2 {
		b, err := p.get(ctx, &normal)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := p.get(short, &normal); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a look-ahead pipe got a reserved buffer (err %v)", err)
	}
	for range 2 {
		b, err := p.get(ctx, &urgent)
		if err != nil {
			t.Fatalf("the applied layer's pipe did not get a reserved buffer: %v", err)
		}
		held = append(held, b)
	}
	// Full: a waiter gets a buffer as soon as one is put back, and a pipe
	// that becomes urgent is woken to look again.
	got := make(chan []byte)
	var later atomic.Bool
	go func() {
		b, err := p.get(ctx, &later)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	p.put(held[3])
	p.put(held[2])
	select {
	case <-got:
		t.Fatal("a look-ahead pipe got a buffer while the reserve was all that was free")
	case <-time.After(50 * time.Millisecond):
	}
	later.Store(true)
	p.notify()
	select {
	case b := <-got:
		if len(b) != 16 {
			t.Errorf("buffer of %d bytes, want 16", len(b))
		}
	case <-time.After(time.Minute):
		t.Fatal("a pipe that became urgent was not woken")
	}
}

func TestChunkPipeCarriesBytesAndTheEnd(t *testing.T) {
	p := newChunkPool(4, 3, 1)
	var urgent atomic.Bool
	urgent.Store(true)
	c := newChunkPipe(context.Background(), p, &urgent)
	want := "the quick brown fox jumps over the lazy dog"
	done := make(chan error, 1)
	go func() { done <- fill(c, iotest.OneByteReader(strings.NewReader(want)), nil) }()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != want {
		t.Errorf("read %q, %v; want %q", got, err, want)
	}
	if err := <-done; err != nil {
		t.Errorf("fill: %v", err)
	}
	c.release()
	if p.inUse != 0 {
		t.Errorf("%d buffers not given back", p.inUse)
	}

	c = newChunkPipe(context.Background(), p, &urgent)
	boom := errors.New("boom")
	go func() { _ = fill(c, io.MultiReader(strings.NewReader("abcdefgh"), iotest.ErrReader(boom)), nil) }()
	got, err = io.ReadAll(c)
	if string(got) != "abcdefgh" || !errors.Is(err, boom) {
		t.Errorf("read %q, %v; want the bytes, then the writer's error", got, err)
	}
}
