// Command noteverify checks PrivateVault's checkpoints and Merkle proofs with the Go reference
// implementations (golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog), so the Python
// ledger is tested against code it shares nothing with.
//
// Usage:
//
//	noteverify note <verifier key>... < signed-note
//	    Opens the note with note.Open and the given verifier keys (name+hash+base64, as
//	    note.NewVerifier parses them) and prints the verified text. Signatures by keys not
//	    given are ignored, as the signed-note spec requires.
//
//	noteverify cosig <witness key>... < cosigned-checkpoint
//	    Opens the note with note.Open and a note.Verifier of the C2SP tlog-cosignature type
//	    cosignature/v1 (key type 0x04) for each witness key; every one of them must have
//	    cosigned. The log's own signatures are ignored.
//
//	noteverify merkle < request.json
//	    Checks inclusion proofs with tlog.CheckRecord and consistency proofs with
//	    tlog.CheckTree against one tree head. When the request lists the leaves, the tree
//	    hashes (the head's and each old one) are also recomputed with tlog.TreeHash.
//
// Exit status 0 means everything verified; anything else prints the reason on stderr.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: noteverify note|cosig <verifier key>... < note | noteverify merkle < request.json")
	}
	var err error
	switch os.Args[1] {
	case "note":
		err = openNote(os.Args[2:], os.Stdin, os.Stdout)
	case "cosig":
		err = openCosigned(os.Args[2:], os.Stdin, os.Stdout)
	case "merkle":
		err = checkMerkle(os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown subcommand %q (want note, cosig or merkle)", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "noteverify:", msg)
	os.Exit(1)
}

// openNote verifies a signed note from in against the verifier keys and writes its text to out.
func openNote(vkeys []string, in io.Reader, out io.Writer) error {
	n, err := openWith("note", vkeys, func(vkey string) (note.Verifier, error) { return note.NewVerifier(vkey) }, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "noteverify: %d signature(s) verified, %d from unknown keys ignored\n",
		len(n.Sigs), len(n.UnverifiedSigs))
	_, err = io.WriteString(out, n.Text)
	return err
}

// openWith parses the verifier keys with parse and opens the note read from in with note.Open.
func openWith(cmd string, vkeys []string, parse func(string) (note.Verifier, error), in io.Reader) (*note.Note, error) {
	if len(vkeys) == 0 {
		return nil, fmt.Errorf("%s: at least one verifier key is needed", cmd)
	}
	verifiers := make([]note.Verifier, 0, len(vkeys))
	for _, vkey := range vkeys {
		v, err := parse(vkey)
		if err != nil {
			return nil, fmt.Errorf("%s: verifier key %q: %w", cmd, vkey, err)
		}
		verifiers = append(verifiers, v)
	}
	msg, err := io.ReadAll(in)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return n, nil
}

// merkleRequest is one tree head and the proofs to check against it. Byte fields are standard
// base64 in JSON; hashes are 32 bytes. Leaf and Leaves hold leaf data (the ledger's record
// hashes): tlog.RecordHash adds the RFC 6962 0x00 prefix itself.
type merkleRequest struct {
	Size        int64              `json:"size"`
	Root        []byte             `json:"root"`
	Leaves      [][]byte           `json:"leaves,omitempty"`
	Inclusion   []inclusionProof   `json:"inclusion"`
	Consistency []consistencyProof `json:"consistency"`
}

type inclusionProof struct {
	Index int64    `json:"index"`
	Leaf  []byte   `json:"leaf"`
	Proof [][]byte `json:"proof"`
}

type consistencyProof struct {
	OldSize int64    `json:"old_size"`
	OldRoot []byte   `json:"old_root"`
	Proof   [][]byte `json:"proof"`
}

func checkMerkle(in io.Reader, out io.Writer) error {
	var req merkleRequest
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("merkle: bad request: %w", err)
	}
	root, err := toHash(req.Root)
	if err != nil {
		return fmt.Errorf("merkle: root: %w", err)
	}
	var tree *storedTree
	if req.Leaves != nil {
		if tree, err = buildTree(req.Leaves); err != nil {
			return err
		}
		if err := tree.expect(req.Size, root); err != nil {
			return err
		}
	}
	for i, p := range req.Inclusion {
		if err := checkInclusion(p, req.Size, root); err != nil {
			return fmt.Errorf("merkle: inclusion[%d] (leaf %d of %d): %w", i, p.Index, req.Size, err)
		}
	}
	for i, p := range req.Consistency {
		if err := checkConsistency(p, req.Size, root, tree); err != nil {
			return fmt.Errorf("merkle: consistency[%d] (%d to %d): %w", i, p.OldSize, req.Size, err)
		}
	}
	_, err = fmt.Fprintf(out, "ok: %d inclusion and %d consistency proofs verified at size %d\n",
		len(req.Inclusion), len(req.Consistency), req.Size)
	return err
}

func checkInclusion(p inclusionProof, size int64, root tlog.Hash) error {
	proof, err := toHashes(p.Proof)
	if err != nil {
		return err
	}
	return tlog.CheckRecord(proof, size, root, p.Index, tlog.RecordHash(p.Leaf))
}

func checkConsistency(p consistencyProof, size int64, root tlog.Hash, tree *storedTree) error {
	oldRoot, err := toHash(p.OldRoot)
	if err != nil {
		return err
	}
	if tree != nil {
		if err := tree.expect(p.OldSize, oldRoot); err != nil {
			return err
		}
	}
	proof, err := toHashes(p.Proof)
	if err != nil {
		return err
	}
	// CheckTree takes the newer tree first: (proof, new size, new hash, old size, old hash).
	return tlog.CheckTree(proof, size, root, p.OldSize, oldRoot)
}

// storedTree is tlog's own storage of a tree: every stored hash, in StoredHashIndex order.
type storedTree struct {
	hashes []tlog.Hash
}

func buildTree(leaves [][]byte) (*storedTree, error) {
	t := &storedTree{}
	for i, leaf := range leaves {
		added, err := tlog.StoredHashes(int64(i), leaf, t)
		if err != nil {
			return nil, fmt.Errorf("merkle: leaf %d: %w", i, err)
		}
		t.hashes = append(t.hashes, added...)
	}
	return t, nil
}

// ReadHashes makes storedTree a tlog.HashReader.
func (t *storedTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("stored hash %d is not stored", x)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// expect checks that tlog computes root as the tree hash at size.
func (t *storedTree) expect(size int64, root tlog.Hash) error {
	got, err := tlog.TreeHash(size, t)
	if err != nil {
		return fmt.Errorf("merkle: tree hash at size %d: %w", size, err)
	}
	if got != root {
		return fmt.Errorf("merkle: tree hash at size %d is %v, the request says %v", size, got, root)
	}
	return nil
}

func toHash(b []byte) (tlog.Hash, error) {
	var h tlog.Hash
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash has %d bytes, want %d", len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

func toHashes(bs [][]byte) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		h, err := toHash(b)
		if err != nil {
			return nil, fmt.Errorf("proof[%d]: %w", i, err)
		}
		out[i] = h
	}
	return out, nil
}
