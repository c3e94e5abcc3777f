// Command mlpeer runs one or more hashicorp/memberlist nodes (Debian's 0.2.2,
// built in GOPATH mode) as a scriptable peer for swarmd's integration tests.
//
// Output: one JSON object per line on stdout. Memberlist's own log goes to
// stderr. Commands: one per line on stdin, optionally prefixed with "@i " to
// address local node i (default 0):
//
//	members            -> {"reply":"members","self":..,"members":[...]}
//	leave              -> {"reply":"leave","self":..,"left":true}
//	send NAME TEXT     -> {"reply":"send","self":..,"sent":true}
//	join ADDR[,ADDR]   -> {"reply":"join","self":..,"joined":N}
//	quit               -> shuts every node down and exits 0 (also on stdin EOF)
//
// Failed commands answer {"reply":<cmd>,"error":"..."}. At start-up it prints
// {"ready":true,"nodes":[...]} once every node listens, then, per node that
// joins -join targets (or node 0), {"startup_join":true,"self":..,"joined":N}.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// ---------------------------------------------------------------------------
// Output

var (
	outMu  sync.Mutex
	outEnc = json.NewEncoder(os.Stdout)
)

func emit(v interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	if err := outEnc.Encode(v); err != nil {
		fmt.Fprintf(os.Stderr, "mlpeer: stdout: %v\n", err)
	}
}

type obj = map[string]interface{}

// ---------------------------------------------------------------------------
// Reading per-node state.
//
// In memberlist 0.2.2 the state and incarnation of a member live in the
// unexported nodeState struct, which embeds memberlist.Node as its first
// field; the exported Node.State is never updated. Every *Node handed out by
// Members() and by the EventDelegate points at that embedded field. We mirror
// the struct, verify its layout against the real one through reflection at
// start-up, and only then read through it. If the layout does not match we
// fall back to what the public API and our own event bookkeeping can tell.

type nodeStateMirror struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

var layoutOK bool

func checkLayout() bool {
	t := reflect.TypeOf(memberlist.Memberlist{})
	nodes, ok1 := t.FieldByName("nodes")
	lock, ok2 := t.FieldByName("nodeLock")
	if !ok1 || !ok2 || lock.Type != reflect.TypeOf(sync.RWMutex{}) {
		return false
	}
	st := nodes.Type
	if st.Kind() != reflect.Slice || st.Elem().Kind() != reflect.Ptr || st.Elem().Elem().Kind() != reflect.Struct {
		return false
	}
	real := st.Elem().Elem()
	mine := reflect.TypeOf(nodeStateMirror{})
	if real.Size() != mine.Size() || real.NumField() != mine.NumField() {
		return false
	}
	for i := 0; i < mine.NumField(); i++ {
		a, b := real.Field(i), mine.Field(i)
		if a.Name != b.Name || a.Offset != b.Offset || a.Type.Kind() != b.Type.Kind() || a.Type.Size() != b.Type.Size() {
			return false
		}
	}
	return real.Field(0).Type == reflect.TypeOf(memberlist.Node{})
}

// lockedNodes returns the node lock and the node slice of m (layoutOK only).
func lockedNodes(m *memberlist.Memberlist) (*sync.RWMutex, *[]*nodeStateMirror) {
	v := reflect.ValueOf(m).Elem()
	mu := (*sync.RWMutex)(unsafe.Pointer(v.FieldByName("nodeLock").UnsafeAddr()))
	nodes := (*[]*nodeStateMirror)(unsafe.Pointer(v.FieldByName("nodes").UnsafeAddr()))
	return mu, nodes
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown(" + strconv.Itoa(int(s)) + ")"
}

func vsnOf(n *memberlist.Node) []int {
	return []int{int(n.PMin), int(n.PMax), int(n.PCur), int(n.DMin), int(n.DMax), int(n.DCur)}
}

func addrOf(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

type memberInfo struct {
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	State       string `json:"state"`
	Incarnation *int64 `json:"incarnation"` // null when unknown (fallback mode)
	Vsn         []int  `json:"vsn"`
}

// ---------------------------------------------------------------------------
// One local memberlist node plus its delegates.

type peer struct {
	name string
	ml   *memberlist.Memberlist

	mu     sync.Mutex
	states map[string]string // last state seen through events (fallback)
}

func (p *peer) eventObj(kind string, n *memberlist.Node) obj {
	o := obj{"event": kind, "self": p.name, "node": n.Name, "addr": addrOf(n), "vsn": vsnOf(n)}
	if layoutOK {
		// The delegate runs on the goroutine that holds the node lock and
		// has just written these fields, so reading them here is safe.
		ns := (*nodeStateMirror)(unsafe.Pointer(n))
		o["state"] = stateName(ns.State)
		o["incarnation"] = ns.Incarnation
	} else if kind == "leave" {
		o["state"] = "dead" // cannot tell dead from left without the layout
	} else {
		o["state"] = "alive"
	}
	p.mu.Lock()
	p.states[n.Name] = o["state"].(string)
	p.mu.Unlock()
	return o
}

// EventDelegate
func (p *peer) NotifyJoin(n *memberlist.Node)   { emit(p.eventObj("join", n)) }
func (p *peer) NotifyLeave(n *memberlist.Node)  { emit(p.eventObj("leave", n)) }
func (p *peer) NotifyUpdate(n *memberlist.Node) { emit(p.eventObj("update", n)) }

// Delegate
func (p *peer) NodeMeta(limit int) []byte { return nil }
func (p *peer) NotifyMsg(b []byte) {
	emit(obj{"event": "msg", "self": p.name, "data": string(b)})
}
func (p *peer) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (p *peer) LocalState(join bool) []byte                { return nil }
func (p *peer) MergeRemoteState(buf []byte, join bool)     {}

func (p *peer) members() []memberInfo {
	var out []memberInfo
	if layoutOK {
		mu, nodes := lockedNodes(p.ml)
		mu.RLock()
		for _, ns := range *nodes {
			inc := int64(ns.Incarnation)
			out = append(out, memberInfo{
				Name: ns.Name, Addr: addrOf(&ns.Node), State: stateName(ns.State),
				Incarnation: &inc, Vsn: vsnOf(&ns.Node),
			})
		}
		mu.RUnlock()
	} else {
		seen := map[string]bool{}
		p.mu.Lock()
		for _, n := range p.ml.Members() {
			st := p.states[n.Name]
			if st == "" || st == "dead" || st == "left" {
				st = "alive"
			}
			seen[n.Name] = true
			out = append(out, memberInfo{Name: n.Name, Addr: addrOf(n), State: st, Vsn: vsnOf(n)})
		}
		for name, st := range p.states {
			if !seen[name] && (st == "dead" || st == "left") {
				out = append(out, memberInfo{Name: name, State: st, Vsn: []int{}})
			}
		}
		p.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if out == nil {
		out = []memberInfo{}
	}
	return out
}

func (p *peer) find(name string) *memberlist.Node {
	for _, n := range p.ml.Members() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ---------------------------------------------------------------------------

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func splitList(s string) []string {
	var l listFlag
	_ = l.Set(s)
	return l
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "mlpeer: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	name := flag.String("name", "mlpeer", "node name (name-0.. when -n > 1)")
	bind := flag.String("bind", "127.0.0.1", "bind and advertise address")
	port := flag.Int("port", 7946, "first port (TCP and UDP)")
	key := flag.String("key", "", "base64 secret key (16, 24 or 32 bytes)")
	profile := flag.String("profile", "local", "timing profile: local or lan")
	count := flag.Int("n", 1, "number of nodes to run in this process")
	var joins listFlag
	flag.Var(&joins, "join", "host:port to join (repeatable or comma-separated)")
	flag.Parse()

	if *count < 1 {
		fail("-n must be >= 1")
	}
	if *port < 1 || *port+*count-1 > 65535 {
		fail("bad -port")
	}
	var secret []byte
	if *key != "" {
		var err error
		if secret, err = base64.StdEncoding.DecodeString(*key); err != nil {
			fail("bad -key: %v", err)
		}
		if l := len(secret); l != 16 && l != 24 && l != 32 {
			fail("bad -key: %d bytes, want 16, 24 or 32", l)
		}
	}
	if *profile != "local" && *profile != "lan" {
		fail("bad -profile %q", *profile)
	}

	logTermination(*name)
	if layoutOK = checkLayout(); !layoutOK {
		fmt.Fprintln(os.Stderr, "mlpeer: nodeState layout not recognised; states come from events only")
	}
	peers := make([]*peer, 0, *count)
	shutdown := func() {
		for _, p := range peers {
			_ = p.ml.Shutdown()
		}
	}
	for i := 0; i < *count; i++ {
		var conf *memberlist.Config
		if *profile == "local" {
			conf = memberlist.DefaultLocalConfig()
		} else {
			conf = memberlist.DefaultLANConfig()
		}
		nodeName := *name
		if *count > 1 {
			nodeName = fmt.Sprintf("%s-%d", *name, i)
		}
		p := &peer{name: nodeName, states: map[string]string{}}
		conf.Name = nodeName
		conf.BindAddr = *bind
		conf.AdvertiseAddr = *bind
		conf.BindPort = *port + i
		conf.AdvertisePort = *port + i
		conf.SecretKey = secret
		conf.Events = p
		conf.Delegate = p
		conf.Logger = log.New(os.Stderr, "["+nodeName+"] ", log.LstdFlags|log.Lmicroseconds)
		ml, err := memberlist.Create(conf)
		if err != nil {
			shutdown()
			fail("create %s: %v", nodeName, err)
		}
		p.ml = ml
		peers = append(peers, p)
	}
	names := make([]string, len(peers))
	for i, p := range peers {
		names[i] = p.name
	}
	emit(obj{"ready": true, "nodes": names, "port": *port, "layout": layoutOK})

	// Extra local nodes join node 0; every node joins the -join targets.
	for i, p := range peers {
		targets := append([]string{}, joins...)
		if i > 0 {
			targets = append(targets, net.JoinHostPort(*bind, strconv.Itoa(*port)))
		}
		if len(targets) == 0 {
			continue
		}
		n, err := p.ml.Join(targets)
		o := obj{"startup_join": true, "self": p.name, "joined": n}
		if err != nil {
			o["error"] = err.Error()
		}
		emit(o)
	}

	commands(peers, os.Stdin)
	shutdown()
	os.Exit(0)
}

// logTermination notes a terminating signal on stderr (so a test can tell who
// ended the peer), then re-raises it: the process still dies by that signal,
// like a crash, without a graceful leave.
func logTermination(name string) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "mlpeer %s: received %v, dying by it\n", name, sig)
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
	}()
}

// commands serves stdin until "quit" or EOF.
func commands(peers []*peer, in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		p := peers[0]
		if strings.HasPrefix(line, "@") {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				sp = len(line)
			}
			idx, err := strconv.Atoi(line[1:sp])
			if err != nil || idx < 0 || idx >= len(peers) {
				emit(obj{"reply": "error", "error": "bad node index " + line[:sp]})
				continue
			}
			p = peers[idx]
			line = strings.TrimSpace(line[sp:])
		}
		cmd, rest := line, ""
		if sp := strings.IndexByte(line, ' '); sp >= 0 {
			cmd, rest = line[:sp], strings.TrimSpace(line[sp+1:])
		}
		reply := obj{"reply": cmd, "self": p.name}
		switch cmd {
		case "members":
			reply["members"] = p.members()
		case "leave":
			if err := p.ml.Leave(5 * time.Second); err != nil {
				reply["left"] = false
				reply["error"] = err.Error()
			} else {
				reply["left"] = true
			}
		case "send":
			target, text := rest, ""
			if sp := strings.IndexByte(rest, ' '); sp >= 0 {
				target, text = rest[:sp], rest[sp+1:]
			}
			if n := p.find(target); n == nil {
				reply["sent"] = false
				reply["error"] = "no live member named " + strconv.Quote(target)
			} else if err := p.ml.SendReliable(n, []byte(text)); err != nil {
				reply["sent"] = false
				reply["error"] = err.Error()
			} else {
				reply["sent"] = true
			}
		case "join":
			n, err := p.ml.Join(splitList(rest))
			reply["joined"] = n
			if err != nil {
				reply["error"] = err.Error()
			}
		case "quit":
			return
		default:
			reply["error"] = "unknown command " + strconv.Quote(cmd)
		}
		emit(reply)
	}
}
