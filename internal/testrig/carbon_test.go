package testrig

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// sendLines writes plaintext lines to carbon on a fresh connection.
func sendLines(t *testing.T, addr, text string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
}

// The rig itself: points sent to the line port are read back from whisper, the Go reader
// agrees with whisper-fetch, and a restart keeps the storage.
func TestCarbonRigStoresAndReadsBackPoints(t *testing.T) {
	c := StartCarbon(t)
	now := time.Now().Unix()
	t1, t2, t3 := now-30, now-29, now-20
	sendLines(t, c.LineAddr(), fmt.Sprintf("rig.a.b 1.5 %d\nrig.a.b 2 %d\nrig.other 7 %d\n", t1, t2, t1))

	got := c.Fetch(t, "rig.a.b", t1, t2)
	for len(got) < 2 { // the two points may reach whisper in two writes
		v, ok := c.WaitFor(t, "rig.a.b", t2, 5*time.Second)
		if !ok {
			t.Fatalf("rig.a.b at %d never arrived:\n%s", t2, c.Output())
		}
		got[t2] = v
	}
	if len(got) != 2 || got[t1] != 1.5 || got[t2] != 2 {
		t.Fatalf("rig.a.b = %v, want {%d: 1.5, %d: 2}", got, t1, t2)
	}
	if v, ok := c.WaitFor(t, "rig.other", t1, 5*time.Second); !ok || v != 7 {
		t.Fatalf("rig.other = %v, %v", v, ok)
	}
	if _, ok := c.WaitFor(t, "rig.other", t2, 100*time.Millisecond); ok {
		t.Fatal("WaitFor found a point that was never sent")
	}
	checkAgainstWhisperFetch(t, c.WhisperFile("rig.a.b"), t1-5, t2+5, got)

	c.Stop(t)
	c.Start(t)
	sendLines(t, c.LineAddr(), fmt.Sprintf("rig.a.b 3 %d\n", t3))
	if v, ok := c.WaitFor(t, "rig.a.b", t3, 10*time.Second); !ok || v != 3 {
		t.Fatalf("after restart: rig.a.b at %d = %v, %v\n%s", t3, v, ok, c.Output())
	}
	if got := c.Fetch(t, "rig.a.b", t1, t3); len(got) != 3 {
		t.Fatalf("after restart: %v, want the 3 points", got)
	}
}

// checkAgainstWhisperFetch compares ReadWhisper with Debian's whisper-fetch --json.
func checkAgainstWhisperFetch(t *testing.T, file string, from, until int64, want map[int64]float64) {
	t.Helper()
	const tool = "/usr/bin/whisper-fetch"
	if _, err := os.Stat(tool); err != nil {
		t.Logf("%s missing: reader not cross-checked", tool)
		return
	}
	out, err := exec.Command(tool, "--json", "--from="+strconv.FormatInt(from, 10),
		"--until="+strconv.FormatInt(until, 10), file).Output()
	if err != nil {
		t.Fatalf("whisper-fetch: %v", err)
	}
	var res struct {
		Start, End, Step int64
		Values           []*float64
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("whisper-fetch output %q: %v", out, err)
	}
	fetched := map[int64]float64{}
	for i, v := range res.Values {
		if v != nil {
			fetched[res.Start+int64(i)*res.Step] = *v
		}
	}
	mine, err := ReadWhisper(file, from, until)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(fetched) != fmt.Sprint(mine) || fmt.Sprint(mine) != fmt.Sprint(want) {
		t.Fatalf("whisper-fetch %v, ReadWhisper %v, sent %v", fetched, mine, want)
	}
}
