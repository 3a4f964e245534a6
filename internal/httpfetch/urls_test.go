package httpfetch

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseURLs(t *testing.T) {
	cases := []struct {
		in      string
		want    string // Targets as "name=url;..."
		wantErr string
	}{
		{in: "http://h/metrics", want: "h:80=http://h/metrics"},
		{in: "https://h/metrics", want: "h:443=https://h/metrics"},
		{in: "http://127.0.0.1:9100/metrics", want: "127.0.0.1:9100=http://127.0.0.1:9100/metrics"},
		{in: "http://[::1]:9100/metrics", want: "[::1]:9100=http://[::1]:9100/metrics"},
		{in: "http://[::1]/metrics", want: "[::1]:80=http://[::1]/metrics"},
		{in: "HTTP://H:1/m", want: "H:1=http://H:1/m"},
		{in: "http://h:1/m?a=b&c=d", want: "h:1=http://h:1/m?a=b&c=d"},
		{
			in:   "app-0=http://10.0.0.1:8080/metrics, app-1=http://10.0.0.2:8080/metrics\n  http://10.0.0.3:8080/metrics,,",
			want: "app-0=http://10.0.0.1:8080/metrics;app-1=http://10.0.0.2:8080/metrics;10.0.0.3:8080=http://10.0.0.3:8080/metrics",
		},
		{in: "a@b_c.d:e[f]=http://h/", want: "a@b_c.d:e[f]=http://h/"},
		{in: "", wantErr: "no URL given"},
		{in: " ,\n\t", wantErr: "no URL given"},
		{in: "ftp://h/x", wantErr: `"ftp://h/x": not an http:// or https:// URL`},
		{in: "x=ftp://h/x", wantErr: `scheme "ftp": only http and https`},
		{in: "h:9100/metrics", wantErr: "not an http:// or https:// URL"},
		{in: "http:///metrics", wantErr: "no host"},
		{in: "http://h/m#frag", wantErr: "#fragment"},
		{in: "=http://h/", wantErr: "empty name"},
		{in: ".hidden=http://h/", wantErr: `name ".hidden" starts with '.'`},
		{in: "a/b=http://h/", wantErr: `name "a/b" has "/"`},
		{in: "a%b=http://h/", wantErr: `has "%"`},
		{in: "http://h/a http://h/a", wantErr: `"http://h/a": URL already given`},
		{in: "http://h/a http://h/b", wantErr: `"http://h/b": name h:80 already used by "http://h/a"`},
		{in: "x=http://h/a x=http://h/b", wantErr: "name x already used"},
		{in: "http://h%20x/", wantErr: "invalid URL"},
		{in: "http://[::1%25eth0]:1/", wantErr: "give one (name=URL)"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseURLs(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q (got %v)", err, tc.wantErr, got)
				}
				if !strings.HasPrefix(err.Error(), "urls: ") {
					t.Fatalf("message %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, tg := range got {
				parts = append(parts, fmt.Sprintf("%s=%s", tg.Name, tg.URL))
			}
			if s := strings.Join(parts, ";"); s != tc.want {
				t.Fatalf("got %s, want %s", s, tc.want)
			}
		})
	}
}
