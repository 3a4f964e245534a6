package config

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// File is one configuration file read as haproxystats' Nagios checks read it: with the same INI
// dialect and interpolation, but without the programs' built-in defaults, so that a check can
// tell "not configured" from "configured".
type File struct {
	l *Loaded
	// Exists is false when the file does not exist; it then reads as empty, like configparser's
	// read(), which skips missing files.
	Exists bool
}

// ReadFile reads file without defaults. A file that does not exist is not an error (see
// File.Exists); an unreadable file or a syntax error is.
func ReadFile(file string) (*File, error) {
	l := &Loaded{defaults: newSection(defaultSection, "", 0), sections: map[string]*section{}}
	data, err := l.readFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &File{l: l}, nil
	case err != nil:
		return nil, &Error{File: file, Reason: "cannot read the configuration file: " + osReason(err)}
	}
	if err := l.parse(file, data); err != nil {
		return nil, err
	}
	return &File{l: l, Exists: true}, nil
}

// MissingError says that a section or an option is not set. Its text is configparser's
// NoSectionError / NoOptionError text, which the checks print as haproxystats' did.
type MissingError struct {
	Section string
	Option  string // "" when the whole section is missing
}

func (e *MissingError) Error() string {
	if e.Option == "" {
		return "No section: " + pyRepr(e.Section)
	}
	return fmt.Sprintf("No option %s in section: %s", pyRepr(e.Option), pyRepr(e.Section))
}

// Get returns the interpolated value of option in section (or inherited from DEFAULT), as
// configparser's get. A missing section or option is a *MissingError; a failed interpolation
// is an *Error naming the file and line of the value.
func (f *File) Get(section, option string) (string, error) {
	option = strings.ToLower(option)
	if section != defaultSection && !f.l.hasSection(section) {
		return "", &MissingError{Section: section}
	}
	s, v, ok, err := f.l.get(section, option)
	if !ok {
		return "", &MissingError{Section: section, Option: option}
	}
	if err != nil {
		return "", &Error{File: v.file, Line: v.line, Section: section, Option: option, Raw: v.raw, Reason: err.Error()}
	}
	return s, nil
}
