// gossipbench: the Go memberlist side of `npm run bench:gossip`. It runs n
// members of Debian's hashicorp/memberlist in one process on loopback and
// measures exactly what bench/gossip.ts measures for swarmd, printing one
// JSON object. Built at run time in GOPATH mode; never committed as a binary.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport wraps memberlist's NetTransport and counts every byte
// sent, UDP and TCP, dialled or accepted.
type countingTransport struct {
	*memberlist.NetTransport
	sent    *int64
	streams chan net.Conn
}

type countingConn struct {
	net.Conn
	sent *int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	atomic.AddInt64(c.sent, int64(n))
	return n, err
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	atomic.AddInt64(t.sent, int64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return countingConn{c, t.sent}, nil
}

// memberlist prefers the node-aware methods when the transport has them.
func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func cpuMs() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

func main() {
	n := flag.Int("n", 32, "members")
	kill := flag.Int("kill", 1, "members stopped without leaving")
	profile := flag.String("profile", "lan", "lan|wan|local")
	base := flag.Int("base", 30000, "first port")
	window := flag.Int("window", 10000, "steady-state window in ms for CPU and bytes")
	settle := flag.Int("settle", 5000, "quiet time in ms after join convergence, before the window")
	timeout := flag.Int("timeout", 180000, "give up after this many ms per phase")
	flag.Parse()
	log.SetOutput(ioutil.Discard)

	var sent int64
	members := make([]*memberlist.Memberlist, *n)
	for i := 0; i < *n; i++ {
		var c *memberlist.Config
		switch *profile {
		case "wan":
			c = memberlist.DefaultWANConfig()
		case "local":
			c = memberlist.DefaultLocalConfig()
		default:
			c = memberlist.DefaultLANConfig()
		}
		c.Name = fmt.Sprintf("m-%d", i)
		c.BindAddr = "127.0.0.1"
		c.AdvertiseAddr = "127.0.0.1"
		c.BindPort = *base + i
		c.AdvertisePort = *base + i
		c.LogOutput = ioutil.Discard
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: *base + i})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ct := &countingTransport{NetTransport: nt, sent: &sent, streams: make(chan net.Conn)}
		go func(t *countingTransport) {
			for conn := range t.NetTransport.StreamCh() {
				t.streams <- countingConn{conn, t.sent}
			}
		}(ct)
		c.Transport = ct
		m, err := memberlist.Create(c)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		members[i] = m
	}

	waitUntil := func(what string, cond func() bool) float64 {
		start := time.Now()
		for !cond() {
			if time.Since(start) > time.Duration(*timeout)*time.Millisecond {
				fmt.Fprintf(os.Stderr, "timeout waiting for %s\n", what)
				os.Exit(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return float64(time.Since(start).Microseconds()) / 1000
	}

	// Join: everyone joins the first, one after the other.
	start := time.Now()
	first := fmt.Sprintf("127.0.0.1:%d", *base)
	for _, m := range members[1:] {
		if _, err := m.Join([]string{first}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	waitUntil("join convergence", func() bool {
		for _, m := range members {
			if m.NumMembers() != *n {
				return false
			}
		}
		return true
	})
	joinMs := float64(time.Since(start).Microseconds()) / 1000

	// Steady state: CPU and bytes over a fixed window, once the join's broadcasts are done.
	time.Sleep(time.Duration(*settle) * time.Millisecond)
	joinBytes := atomic.LoadInt64(&sent)
	atomic.StoreInt64(&sent, 0)
	cpu0 := cpuMs()
	time.Sleep(time.Duration(*window) * time.Millisecond)
	cpu := cpuMs() - cpu0
	bytes := atomic.LoadInt64(&sent)

	// Failure: the last `kill` members stop without leaving.
	killed := map[string]bool{}
	for _, m := range members[*n-*kill:] {
		killed[m.LocalNode().Name] = true
		m.Shutdown()
	}
	alive := members[:*n-*kill]
	failMs := waitUntil("failure convergence", func() bool {
		for _, m := range alive {
			for _, node := range m.Members() {
				if killed[node.Name] {
					return false
				}
			}
		}
		return true
	})
	out, _ := json.Marshal(map[string]interface{}{
		"impl":                   "go-memberlist",
		"n":                      *n,
		"profile":                *profile,
		"join_converge_ms":       joinMs,
		"kill":                   *kill,
		"failure_converge_ms":    failMs,
		"cpu_ms":                 cpu,
		"window_ms":              *window,
		"settle_ms":              *settle,
		"bytes_per_member_per_s": float64(bytes) / float64(*n) / (float64(*window) / 1000),
		"join_bytes_per_member":  float64(joinBytes) / float64(*n),
	})
	fmt.Println(string(out))
	for _, m := range alive {
		m.Shutdown()
	}
}
