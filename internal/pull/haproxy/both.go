package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/statspipe/statspipe/internal/pull"
)

// pullBoth asks for both replies on one connection: `show info;show stat` (with [pull] typed,
// `show info typed;show stat typed`). HAProxy's CLI runs the commands of a line separated by
// ';' in order and ends each reply with an empty line (the prompt of the non-interactive mode
// is "\n"), so the reply is `show info`'s, up to and including the first "\n\n", then `show
// stat`'s: byte for byte what the two commands give on their own connections. Neither `show
// info` nor its typed form has an empty line inside; `show stat` (typed or not) has none
// before its end.
//
// One connection instead of two per socket and round: half the connects, closes and poller
// registrations, one goroutine instead of two (README, "Pull CPU"). The replies are streamed
// into <name>_info and <name>_stat (.typed); errors name the command whose reply was being
// read, as two requests did.
func (s *socket) pullBoth(ctx context.Context, snap pull.SnapshotWriter) error {
	cmds := s.p.commands(s.name)
	infoCmd, statCmd := cmds[0].cmd, cmds[1].cmd
	infoFile, statFile := cmds[0].file, cmds[1].file
	conn, done, err := s.ask(ctx, infoCmd+";"+statCmd, infoCmd+";"+statCmd)
	if err != nil {
		return err
	}
	defer done()
	fail := func(what, cmd string, err error) error { return s.failure(ctx, what, cmd, err) }
	limit := s.p.opt.MaxReplySize
	tooLarge := func(cmd string) error {
		return fmt.Errorf("reply to %q from %s socket %s is larger than max-reply-size (%d bytes); "+
			"stopped reading it", cmd, s.kind(), s.address, limit)
	}
	zero := func(cmd string) error {
		return fmt.Errorf("received zero data for %q from %s socket %s", cmd, s.kind(), s.address)
	}

	// Wait for the first bytes without holding a worker buffer (a socket that accepts and
	// never answers must not starve the others).
	first := make([]byte, firstReadSize)
	n, readErr := readSome(conn, first)
	if n == 0 {
		if readErr == io.EOF {
			return zero(infoCmd)
		}
		return fail("reading reply to", infoCmd, readErr)
	}
	if readErr != nil && readErr != io.EOF {
		return fail("reading reply to", infoCmd, readErr)
	}
	buf, err := s.p.takeBuffer(ctx)
	if err != nil {
		return fail("waiting for a worker for", infoCmd, err)
	}
	defer s.p.giveBuffer(buf)
	if len(buf) < 2*firstReadSize {
		// a tiny buffer-limit: the split below needs the first read and room for more
		buf = make([]byte, 2*firstReadSize)
	}
	filled := copy(buf, first[:n])
	eof := readErr == io.EOF

	// The info part: until the first "\n\n". It is small (about 1 KiB); a larger one is
	// written out whenever buf is full.
	info, err := snap.Create(infoFile)
	if err != nil {
		return fmt.Errorf("creating %s: %w", infoFile, err)
	}
	var infoLen int64
	scanned := 0    // buf[:scanned] holds no end of the info part
	lastNL := false // the byte before buf[0] (already written) was '\n'
	end := -1
	for {
		if i := infoEnd(buf[:filled], scanned, lastNL); i >= 0 {
			end = i
			break
		}
		scanned = filled
		if infoLen+int64(filled) > limit {
			return tooLarge(infoCmd)
		}
		if eof {
			break
		}
		if filled == len(buf) {
			if _, err := info.Write(buf[:filled]); err != nil {
				return fmt.Errorf("writing %s: %w", infoFile, err)
			}
			infoLen += int64(filled)
			lastNL = buf[filled-1] == '\n'
			filled, scanned = 0, 0
		}
		n, err := conn.Read(buf[filled:])
		filled += n
		if err == io.EOF {
			eof = true
		} else if err != nil {
			return fail("reading reply to", infoCmd, err)
		}
	}
	if end < 0 { // EOF inside the info part: no `show stat` reply at all
		if _, err := info.Write(buf[:filled]); err != nil {
			return fmt.Errorf("writing %s: %w", infoFile, err)
		}
		return zero(statCmd)
	}
	if infoLen+int64(end) > limit {
		return tooLarge(infoCmd)
	}
	if _, err := info.Write(buf[:end]); err != nil {
		return fmt.Errorf("writing %s: %w", infoFile, err)
	}
	if err := info.Commit(); err != nil {
		return fmt.Errorf("writing %s: %w", infoFile, err)
	}

	// The stat part: what follows, streamed as one request streams its reply.
	filled = copy(buf, buf[end:filled])
	if filled == 0 && !eof {
		n, err := readSome(conn, buf)
		filled = n
		if err == io.EOF {
			eof = true
		} else if err != nil {
			return fail("reading reply to", statCmd, err)
		}
	}
	if filled == 0 {
		return zero(statCmd)
	}
	if int64(filled) > limit {
		return tooLarge(statCmd)
	}
	stat, err := snap.Create(statFile)
	if err != nil {
		return fmt.Errorf("creating %s: %w", statFile, err)
	}
	if eof {
		if _, err := stat.Write(buf[:filled]); err != nil {
			return fmt.Errorf("writing %s: %w", statFile, err)
		}
	} else if err := copyReply(stat, conn, buf, filled, limit-int64(filled)); err != nil {
		var we writeError
		switch {
		case errors.Is(err, errTooLarge):
			return tooLarge(statCmd)
		case errors.As(err, &we):
			return fmt.Errorf("writing %s: %w", statFile, we.err)
		}
		return fail("reading reply to", statCmd, err)
	}
	if err := stat.Commit(); err != nil {
		return fmt.Errorf("writing %s: %w", statFile, err)
	}
	return nil
}

// infoEnd returns the index just past the first "\n\n" in b at or after from (lastNL: the
// byte before b[0] was '\n'), or −1.
func infoEnd(b []byte, from int, lastNL bool) int {
	if from == 0 && lastNL && len(b) > 0 && b[0] == '\n' {
		return 1
	}
	if from > 0 {
		from-- // the pair may straddle the previous scan's end
	}
	if i := bytes.Index(b[from:], []byte("\n\n")); i >= 0 {
		return from + i + 2
	}
	return -1
}
