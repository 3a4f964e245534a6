package httpfetch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Target is one instance to fetch: Name identifies it in file names, logs and (sanitised by the
// caller) Graphite paths; URL is what is fetched.
type Target struct {
	Name string
	URL  string
}

// NameChars are the characters a target name may have: letters, digits and "_.:@[]-". That
// covers host:port, [IPv6]:port and name@host forms, and nothing that a file name or a shell
// treats specially. A name also must not start with "." (hidden files, "." and "..").
const NameChars = "A-Za-z0-9 and _.:@[]-"

// ParseURLs parses the urls option: items separated by whitespace (continuation lines of an INI
// value arrive as newlines) or commas, each "URL" or "name=URL". Schemes are http and https (a
// UNIX-socket source uses http URLs too). Without a name, the name is the URL's host:port,
// with the scheme's default port when the URL has none (http://h/metrics → h:80,
// http://[::1]:9100/ → [::1]:9100). Empty input, a repeated URL, a repeated name and a name
// outside NameChars are errors that quote the item.
func ParseURLs(s string) ([]Target, error) {
	items := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
	})
	if len(items) == 0 {
		return nil, errors.New("urls: no URL given")
	}
	out := make([]Target, 0, len(items))
	byName := make(map[string]string, len(items))
	byURL := make(map[string]string, len(items))
	for _, item := range items {
		t, err := parseTarget(item)
		if err != nil {
			return nil, fmt.Errorf("urls: %q: %w", item, err)
		}
		if prev, dup := byURL[t.URL]; dup {
			return nil, fmt.Errorf("urls: %q: URL already given (as %q)", item, prev)
		}
		if prev, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("urls: %q: name %s already used by %q; give one of them a name (name=URL)", item, t.Name, prev)
		}
		byURL[t.URL] = item
		byName[t.Name] = item
		out = append(out, t)
	}
	return out, nil
}

func parseTarget(item string) (Target, error) {
	var t Target
	rawURL := item
	lower := strings.ToLower(item)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		name, rest, ok := strings.Cut(item, "=")
		if !ok {
			return t, errors.New("not an http:// or https:// URL, nor name=URL")
		}
		if name == "" {
			return t, errors.New("empty name before '='")
		}
		if err := checkName(name); err != nil {
			return t, err
		}
		t.Name, rawURL = name, rest
	}
	u, err := parseHTTPURL(rawURL)
	if err != nil {
		return t, err
	}
	t.URL = u.String()
	if t.Name == "" {
		port := u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		t.Name = net.JoinHostPort(u.Hostname(), port)
		if err := checkName(t.Name); err != nil {
			return t, fmt.Errorf("the host gives no usable name (%w); give one (name=URL)", err)
		}
	}
	return t, nil
}

// parseHTTPURL parses an absolute http or https URL with a host.
func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid URL: %v", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q: only http and https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("URL has no host")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return nil, errors.New("URL has a #fragment")
	}
	return u, nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if name[0] == '.' {
		return fmt.Errorf("name %q starts with '.'", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("_.:@[]-", c) >= 0
		if !ok {
			return fmt.Errorf("name %q has %q; a name may have only %s", name, name[i:i+1], NameChars)
		}
	}
	return nil
}
