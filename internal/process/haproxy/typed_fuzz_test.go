package haproxy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// typedSeeds adds the typed captures and small damaged variants.
func typedSeeds(f *testing.F) {
	for _, s := range typedSockets {
		for _, name := range []string{s + "_stat.typed", s + "_info.typed"} {
			data, err := os.ReadFile(filepath.Join(typedDir, name))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
			f.Add(data[:len(data)/3])
		}
	}
	f.Add([]byte("B.4.0.0.pxname.1:KNS:str:be\nB.4.0.1.svname.1:KNS:str:BACKEND\nB.4.0.17.status.1:SGP:str:\"a,\"\"b\"\n" +
		"B.4.0.32.type.1:CGS:u32:1\nB.4.0.30.lbtot.1:MCP:u64:5\nB.4.0.60.rtime.1:MaP:u32:7\nB.4.0.150.x.1:MCP:u64:1\n"))
	f.Add([]byte("S.4.1.0.pxname.1:KNS:str:b\nS.4.1.1.svname.1:KNS:str:s,1\nS.4.1.32.type.1:CGS:s32:-2\nS.4.1.1.svname.1:KNS:str:t\n"))
	f.Add([]byte("0.Name.1:POS:str:HAProxy\n8.Uptime_sec.1:MDP:u32:7\n17.CurrConns.1:MGP:u32:3\n\n"))
	f.Add([]byte("Unknown command. Please enter one of the following commands only :\n"))
}

// FuzzTranscodeTyped feeds arbitrary typed replies. Nothing panics; a `show stat typed`
// reply that transcodes is a CSV whose every row has the header's number of fields; a typed
// snapshot gives exactly the lines of a plain snapshot holding the transcoded text; a `show
// info typed` reply that transcodes has one `Name: value` line per line.
func FuzzTranscodeTyped(f *testing.F) {
	typedSeeds(f)
	typedDir, plainDir := fuzzDir(f), fuzzDir(f)
	opts := Options{Prefix: "p", AggrServerMetrics: true, PerProcessMetrics: true, ServerStates: true}
	typed, plain := NewProcessor(opts, nil), NewProcessor(opts, nil)
	var tc typedTranscoder
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := tc.transcodeStat(data); err == nil {
			checkTranscodedCSV(t, tc.out)
			writeOnly(t, typedDir, "a.sock_stat.typed", data)
			writeOnly(t, plainDir, "a.sock_stat", tc.out)
			a, errA := processForFuzz(t, typed, typedDir)
			b, errB := processForFuzz(t, plain, plainDir)
			if (errA == nil) != (errB == nil) || !slices.Equal(a, b) {
				t.Fatalf("typed and transcoded plain differ:\n%v %v\n%q\n%q", errA, errB, a, b)
			}
		}
		if err := tc.transcodeInfo(data); err == nil {
			want := 0
			for line := range bytes.Lines(data) {
				if len(bytes.TrimSuffix(line, []byte("\n"))) > 0 {
					want++
				}
			}
			if got := bytes.Count(tc.out, []byte("\n")) - 1; got != want {
				t.Fatalf("%d info lines from %d typed lines", got, want)
			}
			writeOnly(t, typedDir, "a.sock_info.typed", data)
			processForFuzz(t, typed, typedDir)
			os.Remove(filepath.Join(typedDir, "a.sock_info.typed"))
		}
	})
}

// checkTranscodedCSV: a header, rows of as many fields, one blank line at the end.
func checkTranscodedCSV(t *testing.T, csv []byte) {
	t.Helper()
	if !bytes.HasPrefix(csv, []byte("# ")) || !bytes.HasSuffix(csv, []byte("\n\n")) {
		t.Fatalf("not a show stat reply: %.200q", csv)
	}
	var s csvScanner
	s.setWant(1)
	want := -1
	for data := csv[:len(csv)-1]; len(data) > 0; {
		n, nFields, _, st := s.next(data, true)
		if st != scanOK || nFields == 0 {
			t.Fatalf("bad record (%v, %d fields) at %.200q", st, nFields, data)
		}
		if want < 0 {
			want = nFields
		} else if nFields != want {
			t.Fatalf("row of %d fields, header %d: %.200q", nFields, want, data[:n])
		}
		data = data[n:]
	}
	if strings.Count(string(csv), "\n") < 2 {
		t.Fatal("no row")
	}
}
