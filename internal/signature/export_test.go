package signature

import (
	"crypto/ed25519"
	"crypto/sha512"
)

// Ed25519Stream checks sig over msg by pub as a Checker does, hashing
// the message as it streams by.
func Ed25519Stream(pub ed25519.PublicKey, msg, sig []byte) bool {
	h := sha512.New()
	if len(sig) == ed25519.SignatureSize {
		h.Write(sig[:32])
	}
	h.Write(pub)
	h.Write(msg)
	return ed25519Check(pub, h, sig)
}
