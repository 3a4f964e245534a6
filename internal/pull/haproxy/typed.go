package haproxy

// [pull] typed: every socket is asked the typed forms of both commands instead of the plain
// ones (HAProxy's management.txt §9.3; formats.md §1.5, §2), one line per field with its
// tags (origin, nature, scope), type and value. The replies are streamed like the plain ones,
// with the same limits and errors, into files whose names tell stats-process which form it
// reads: <name>_info.typed and <name>_stat.typed.

// TypedSuffix ends the names of the typed replies' files.
const TypedSuffix = ".typed"

// command is one request of a socket's pull: the command sent and the snapshot file its reply
// goes to.
type command struct{ cmd, file string }

// commands returns the two requests of the socket named name.
func (p *Provider) commands(name string) [2]command {
	if p.opt.Typed {
		return [2]command{{"show info typed", name + "_info" + TypedSuffix}, {"show stat typed", name + "_stat" + TypedSuffix}}
	}
	return [2]command{{"show info", name + "_info"}, {"show stat", name + "_stat"}}
}
