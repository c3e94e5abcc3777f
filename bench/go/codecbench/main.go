// codecbench: the per-packet work of hashicorp/memberlist, timed in Go for
// bench/codec.ts. The steps are the ones memberlist runs (go-msgpack with a
// zero MsgpackHandle, compress/lzw LSB 8, AES-GCM sealing in its v1 format),
// on the same inputs as the TypeScript side. Prints one JSON object: ns/op
// per step.
package main

import (
	"bytes"
	"compress/lzw"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"net"
	"testing"

	"github.com/hashicorp/go-msgpack/codec"
)

// The message structs as memberlist declares them (field names are the wire keys).
type alive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

type ping struct {
	SeqNo      uint32
	Node       string
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

func encode(t byte, v interface{}) []byte {
	buf := bytes.NewBuffer(nil)
	buf.WriteByte(t)
	hd := codec.MsgpackHandle{}
	enc := codec.NewEncoder(buf, &hd)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func decode(buf []byte, out interface{}) {
	r := bytes.NewReader(buf)
	hd := codec.MsgpackHandle{}
	dec := codec.NewDecoder(r, &hd)
	if err := dec.Decode(out); err != nil {
		panic(err)
	}
}

func lzwCompress(in []byte) []byte {
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, 8)
	w.Write(in)
	w.Close()
	return buf.Bytes()
}

func lzwDecompress(in []byte) []byte {
	r := lzw.NewReader(bytes.NewReader(in), lzw.LSB, 8)
	out, err := ioutil.ReadAll(r)
	if err != nil {
		panic(err)
	}
	r.Close()
	return out
}

func seal(gcm cipher.AEAD, msg []byte) []byte {
	out := make([]byte, 1+12, 1+12+len(msg)+16)
	out[0] = 1
	rand.Read(out[1:13])
	return gcm.Seal(out, out[1:13], msg, nil)
}

func open(gcm cipher.AEAD, blob []byte) []byte {
	p, err := gcm.Open(nil, blob[1:13], blob[13:], nil)
	if err != nil {
		panic(err)
	}
	return p
}

func ns(f func()) float64 {
	r := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			f()
		}
	})
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

func main() {
	a := alive{Incarnation: 7, Node: "node-0042", Addr: net.ParseIP("127.0.0.1").To4(), Port: 7946, Vsn: []uint8{1, 5, 2, 0, 0, 0}}
	p := ping{SeqNo: 1234, Node: "node-0042", SourceAddr: net.ParseIP("127.0.0.1").To4(), SourcePort: 7946, SourceNode: "node-0001"}
	aliveBuf := encode(4, &a)
	// A gossip packet's worth: 20 alive messages back to back, as a compound carries them.
	var batch []byte
	for i := 0; i < 20; i++ {
		a.Node = fmt.Sprintf("node-%04d", i)
		batch = append(batch, encode(4, &a)...)
	}
	compressed := lzwCompress(batch)
	block, _ := aes.NewCipher(make([]byte, 16))
	gcm, _ := cipher.NewGCM(block)
	sealed := seal(gcm, batch)

	res := map[string]float64{
		"encode_alive":       ns(func() { encode(4, &a) }),
		"decode_alive":       ns(func() { var x alive; decode(aliveBuf[1:], &x) }),
		"encode_ping":        ns(func() { encode(0, &p) }),
		"lzw_compress_batch": ns(func() { lzwCompress(batch) }),
		"lzw_decompress":     ns(func() { lzwDecompress(compressed) }),
		"aes_seal_batch":     ns(func() { seal(gcm, batch) }),
		"aes_open_batch":     ns(func() { open(gcm, sealed) }),
	}
	out, _ := json.Marshal(map[string]interface{}{"impl": "go", "ns_per_op": res, "batch_bytes": len(batch)})
	fmt.Println(string(out))
}
