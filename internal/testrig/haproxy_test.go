package testrig

import (
	"encoding/csv"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statRows parses a show stat reply into rows keyed "pxname/svname" by column name.
func statRows(t *testing.T, reply string) map[string]map[string]string {
	t.Helper()
	if !strings.HasPrefix(reply, "# pxname,svname,") {
		t.Fatalf("not a show stat reply: %.200q", reply)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(reply, "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, name := range recs[0] {
			if i < len(rec) {
				row[name] = rec[i]
			}
		}
		out[rec[0]+"/"+rec[1]] = row
	}
	return out
}

func TestStartHAProxy(t *testing.T) {
	h := StartHAProxy(t, HAProxyOptions{Instances: 2, TCPStats: true})
	if len(h.Instances) != 2 {
		t.Fatalf("%d instances", len(h.Instances))
	}
	h.SendTraffic(t, 10)

	for _, inst := range h.Instances {
		if filepath.Dir(inst.Socket) != h.SocketDir || len(inst.Socket) >= 108 {
			t.Fatalf("socket %s", inst.Socket)
		}
		info := inst.Command(t, "show info")
		if !strings.HasPrefix(info, "Name: HAProxy\n") || !strings.Contains(info, "\nProcess_num: 1\n") {
			t.Fatalf("instance %d show info: %.300q", inst.Index, info)
		}
		rows := statRows(t, inst.Command(t, "show stat"))
		if got := rows["fe_main/FRONTEND"]["req_tot"]; got != "10" {
			t.Errorf("instance %d fe_main req_tot = %q, want 10", inst.Index, got)
		}
		if got := rows["fe_main/FRONTEND"]["hrsp_4xx"]; got != "2" {
			t.Errorf("instance %d fe_main hrsp_4xx = %q, want 2", inst.Index, got)
		}
		if got := rows["fe.dotted.name/FRONTEND"]["req_tot"]; got != "10" {
			t.Errorf("instance %d fe.dotted.name req_tot = %q, want 10", inst.Index, got)
		}
		for _, key := range []string{"be_app/app1", "be_app/app2", "be_app/app.dead", "be.dotted.name/web.1", "be_noservers/BACKEND"} {
			if rows[key] == nil {
				t.Errorf("instance %d has no row %s", inst.Index, key)
			}
		}
		if _, odd := rows["be_onlyodd/s1"]; odd != (inst.Index%2 == 1) {
			t.Errorf("instance %d: be_onlyodd present = %v", inst.Index, odd)
		}
		if rows["be_app/app1"]["weight"] != "100" || rows["be_app/app2"]["weight"] != "50" {
			t.Errorf("instance %d weights %s/%s", inst.Index, rows["be_app/app1"]["weight"], rows["be_app/app2"]["weight"])
		}

		// The TCP stats socket is the same process.
		c, err := net.DialTimeout("tcp", inst.TCPStats, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "show info\n")
		c.SetDeadline(time.Now().Add(2 * time.Second))
		tcpInfo, _ := io.ReadAll(c)
		c.Close()
		if !strings.Contains(string(tcpInfo), "\nPid: ") || !strings.Contains(info, "\nPid: ") {
			t.Fatalf("tcp show info: %.200q", tcpInfo)
		}
	}

	// app.dead points at a closed port: the 200 ms health checks take it DOWN.
	deadline := time.Now().Add(5 * time.Second)
	for {
		status := statRows(t, h.Instances[0].Command(t, "show stat"))["be_app/app.dead"]["status"]
		if status == "DOWN" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app.dead status %q after 5 s", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFakeStatsSocket(t *testing.T) {
	dir := t.TempDir()
	big := []byte(strings.Repeat("x", 3<<20))
	f := ServeFakeStats(t, "unix", filepath.Join(dir, "f.sock"), FakeReply{"show stat": big}, false)
	ask := func(cmd string) string {
		c, err := net.Dial("unix", f.Address)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, cmd+"\n")
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := ask("show stat"); len(got) != len(big) {
		t.Fatalf("reply of %d bytes, want %d", len(got), len(big))
	}
	if got := ask("show nothing"); !strings.HasPrefix(got, "Unknown command.") {
		t.Fatalf("unknown command reply %q", got)
	}
	if f.Commands() != 2 {
		t.Fatalf("commands %d", f.Commands())
	}

	hung := ServeFakeStats(t, "tcp", "127.0.0.1:0", nil, true)
	c, err := net.Dial("tcp", hung.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "show info\n")
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("hung socket answered: %d %v", n, err)
	}
	hung.Close() // ends the hanging connection
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("after Close: %v, want EOF", err)
	}
}
