// Command tesserabench appends entries to a Tessera log on its POSIX storage driver and prints
// how fast they were integrated, so that `make bench` can compare PrivateVault's ledger with it
// in the same run, on the same machine.
//
// The appender is set up as Tessera's own conformance server sets it up
// (cmd/conformance/posix/main.go at v1.0.4): batches of 256 entries or 1 s, a checkpoint every
// 1 s, republished every minute, the in-memory antispam; concurrent writers stand in for its HTTP
// clients.
//
// Usage:
//
//	tesserabench -dir DIR -entries N -size 350 -writers 64
//
// It prints one JSON object: entries, seconds until every Add was integrated (each future
// resolved with its index) and until a checkpoint covering all of them was published, and the
// rates.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
)

type result struct {
	Entries              int     `json:"entries"`
	EntryBytes           int     `json:"entry_bytes"`
	Writers              int     `json:"writers"`
	Window               int     `json:"window"`
	IntegratedSeconds    float64 `json:"integrated_seconds"`
	IntegratedPerSecond  float64 `json:"integrated_per_second"`
	CheckpointSeconds    float64 `json:"checkpoint_seconds"`
	CheckpointPerSecond  float64 `json:"checkpoint_per_second"`
	CheckpointedTreeSize uint64  `json:"checkpointed_tree_size"`
}

func main() {
	dir := flag.String("dir", "", "an empty directory for the log")
	entries := flag.Int("entries", 100000, "how many entries to append")
	size := flag.Int("size", 350, "bytes per entry")
	writers := flag.Int("writers", 64, "concurrent writers")
	window := flag.Int("window", 32, "adds each writer keeps in flight (writers × window stays under Tessera's pushback limit, 4096)")
	flag.Parse()
	if *dir == "" || *entries <= 0 || *size < 8 || *writers <= 0 || *window <= 0 {
		fail(fmt.Errorf("usage: tesserabench -dir DIR [-entries N] [-size BYTES>=8] [-writers W] [-window K]"))
	}
	if err := run(*dir, *entries, *size, *writers, *window); err != nil {
		fail(err)
	}
}

func run(dir string, entries, size, writers, window int) error {
	ctx := context.Background()
	skey, _, err := note.GenerateKey(rand.Reader, "tesserabench")
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return fmt.Errorf("posix storage: %w", err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(time.Second).
		WithCheckpointRepublishInterval(time.Minute).
		WithBatching(256, time.Second).
		WithAntispam(tessera.DefaultAntispamInMemorySize, nil))
	if err != nil {
		return fmt.Errorf("appender: %w", err)
	}

	// Every entry is distinct (its number, then random bytes), so the antispam never dedups.
	payload := make([]byte, size)
	if _, err := rand.Read(payload); err != nil {
		return err
	}
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	started := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer keeps up to `window` adds in flight, as an HTTP client pool would: Add
			// returns a future at once, resolved when the entry's batch is integrated.
			var inflight []tessera.IndexFuture
			resolve := func() bool {
				if _, err := inflight[0](); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return false
				}
				inflight = inflight[1:]
				return true
			}
			for {
				n := next.Add(1) - 1
				if n >= int64(entries) {
					break
				}
				data := make([]byte, size)
				copy(data, payload)
				binary.BigEndian.PutUint64(data, uint64(n))
				if len(inflight) == window && !resolve() {
					return
				}
				inflight = append(inflight, appender.Add(ctx, tessera.NewEntry(data)))
			}
			for len(inflight) > 0 {
				if !resolve() {
					return
				}
			}
		}()
	}
	wg.Wait()
	integrated := time.Since(started)
	if err, ok := firstErr.Load().(error); ok {
		return fmt.Errorf("add: %w", err)
	}

	var treeSize uint64
	for deadline := time.Now().Add(30 * time.Second); ; {
		raw, err := reader.ReadCheckpoint(ctx)
		if err == nil {
			treeSize = checkpointSize(raw)
		}
		if treeSize >= uint64(entries) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkpointed := time.Since(started)
	if err := shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if treeSize < uint64(entries) {
		return fmt.Errorf("the published checkpoint covers %d entries after 30 s, not %d", treeSize, entries)
	}
	out := result{
		Entries:              entries,
		EntryBytes:           size,
		Writers:              writers,
		Window:               window,
		IntegratedSeconds:    integrated.Seconds(),
		IntegratedPerSecond:  float64(entries) / integrated.Seconds(),
		CheckpointSeconds:    checkpointed.Seconds(),
		CheckpointPerSecond:  float64(entries) / checkpointed.Seconds(),
		CheckpointedTreeSize: treeSize,
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// checkpointSize reads the tree size: the second line of the checkpoint's body (C2SP tlog-checkpoint).
func checkpointSize(raw []byte) uint64 {
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 2 {
		return 0
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tesserabench:", err)
	os.Exit(1)
}
