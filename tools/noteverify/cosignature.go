package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// cosignatureV1 is the C2SP tlog-cosignature key type byte of Ed25519 cosigners.
const cosignatureV1 = 0x04

// cosignatureVerifier is a note.Verifier of c2sp.org/tlog-cosignature cosignature/v1 lines,
// written from the spec (the way torchwood's CosignatureVerifier is), so that note.Open checks
// the witness lines of a checkpoint like any other signature.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify checks timestamp || Ed25519 signature over "cosignature/v1\ntime <t>\n" || note text.
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	m := "cosignature/v1\ntime " + strconv.FormatUint(t, 10) + "\n" + string(msg)
	return ed25519.Verify(v.key, []byte(m), sig[8:])
}

// newCosignatureVerifier parses a vkey name+hash+base64(0x04 || key) and checks its key hash.
func newCosignatureVerifier(vkey string) (*cosignatureVerifier, error) {
	name, rest, ok := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok || !ok2 {
		return nil, fmt.Errorf("malformed verifier key %q", vkey)
	}
	hash, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil || len(hash16) != 8 {
		return nil, fmt.Errorf("malformed key hash in %q", vkey)
	}
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != cosignatureV1 {
		return nil, fmt.Errorf("%q is not a cosignature/v1 Ed25519 key", vkey)
	}
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	if binary.BigEndian.Uint32(h[:4]) != uint32(hash) {
		return nil, fmt.Errorf("key hash of %q does not match its key", vkey)
	}
	return &cosignatureVerifier{name: name, hash: uint32(hash), key: ed25519.PublicKey(key[1:])}, nil
}

// openCosigned verifies a checkpoint's cosignatures by every given witness key with note.Open
// (other signatures, the log's among them, are ignored) and writes the note text to out.
func openCosigned(vkeys []string, in io.Reader, out io.Writer) error {
	parse := func(vkey string) (note.Verifier, error) { return newCosignatureVerifier(vkey) }
	n, err := openWith("cosig", vkeys, parse, in)
	if err != nil {
		return err
	}
	signed := map[string]bool{}
	for _, s := range n.Sigs {
		signed[s.Name] = true
	}
	for _, vkey := range vkeys {
		if name, _, _ := strings.Cut(vkey, "+"); !signed[name] {
			return fmt.Errorf("cosig: no valid cosignature by %s", name)
		}
	}
	fmt.Fprintf(os.Stderr, "noteverify: %d cosignature(s) verified, %d other signature(s) ignored\n",
		len(n.Sigs), len(n.UnverifiedSigs))
	_, err = io.WriteString(out, n.Text)
	return err
}
