// Package status defines Arbor's one error type: a code, a message, optional
// details and a retryable flag, the same on both sides of the wire.
//
// The root package re-exports it; users never import this package. It is not
// a logging or tracing facility, only the error value and its codes.
package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Code classifies an error. The numbering follows gRPC's so that codes read
// the same to people who know it; it is Arbor's own wire value.
type Code uint32

// The codes.
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{
	OK: "OK", Canceled: "Canceled", Unknown: "Unknown", InvalidArgument: "InvalidArgument",
	DeadlineExceeded: "DeadlineExceeded", NotFound: "NotFound", AlreadyExists: "AlreadyExists",
	PermissionDenied: "PermissionDenied", ResourceExhausted: "ResourceExhausted",
	FailedPrecondition: "FailedPrecondition", Aborted: "Aborted", OutOfRange: "OutOfRange",
	Unimplemented: "Unimplemented", Internal: "Internal", Unavailable: "Unavailable",
	DataLoss: "DataLoss", Unauthenticated: "Unauthenticated",
}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", uint32(c))
}

// ParseCode is the inverse of Code.String, "Code(N)" of an unnamed code
// included.
func ParseCode(s string) (Code, bool) {
	for i, n := range codeNames {
		if n == s {
			return Code(i), true
		}
	}
	if digits, ok := strings.CutPrefix(s, "Code("); ok && strings.HasSuffix(digits, ")") {
		if n, err := strconv.ParseUint(strings.TrimSuffix(digits, ")"), 10, 32); err == nil {
			return Code(n), true
		}
	}
	return 0, false
}

// Category sentinels: broad classes of failure (RpcNet's error kinds) that
// callers branch on with errors.Is, independent of the code.
var (
	ErrConnection    = errors.New("connection error")
	ErrStream        = errors.New("stream error")
	ErrTLS           = errors.New("tls error")
	ErrConfig        = errors.New("config error")
	ErrIO            = errors.New("io error")
	ErrSerialization = errors.New("serialization error")
	ErrTimeout       = errors.New("timeout")
	ErrUnknownMethod = errors.New("unknown method")
	ErrProtocol      = errors.New("protocol error")
)

// Error is the error every Arbor call returns. Compare with errors.Is
// against a code sentinel (status.Sentinel), a category sentinel, or the
// context package's Canceled/DeadlineExceeded; use errors.As to read it.
type Error struct {
	Code      Code
	Message   string
	Details   []byte
	Retryable bool
	// Category is one of the Err* sentinels, or nil. It travels as its
	// id (CategoryID); a receiver that gets none derives it from the code.
	Category error
	// Cause is the local error this one wraps, if any. Not sent.
	Cause error

	sentinel bool
}

// New returns an error with the code and message.
func New(c Code, msg string) *Error { return &Error{Code: c, Message: msg, Category: categoryOf(c)} }

// Errorf returns an error with the code and a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return New(c, fmt.Sprintf(format, args...))
}

// Wrap returns an error with the code and category whose message is
// msg + ": " + cause, keeping cause reachable through errors.Unwrap.
func Wrap(c Code, category, cause error, msg string) *Error {
	m := msg
	if cause != nil {
		if m != "" {
			m += ": "
		}
		m += cause.Error()
	}
	if category == nil {
		category = categoryOf(c)
	}
	return &Error{Code: c, Message: m, Category: category, Cause: cause}
}

// Sentinel returns a value that matches, under errors.Is, every Error
// carrying code c.
func Sentinel(c Code) *Error { return &Error{Code: c, sentinel: true} }

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Unwrap exposes the local cause.
func (e *Error) Unwrap() error { return e.Cause }

// AsForeign lets errors.As read an *Error as the root package's error
// type: it converts e into *target when target is a pointer to that type.
// The root package sets it when it initializes; it is never changed
// afterwards.
var AsForeign func(e *Error, target any) bool

// As implements errors.As for the root package's error type, so that an
// error of a lower package reads as an *arbor.Error.
func (e *Error) As(target any) bool {
	if AsForeign == nil {
		return false
	}
	return AsForeign(e, target)
}

// IsForeign matches e against the root package's code sentinels. Set by
// the root package when it initializes.
var IsForeign func(e *Error, target error) (is, known bool)

// Is matches code sentinels, category sentinels and the context errors.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		if t.sentinel {
			return t.Code == e.Code
		}
		return t == e
	}
	if IsForeign != nil {
		if is, known := IsForeign(e, target); known {
			return is
		}
	}
	switch target {
	case nil:
		return false
	case context.Canceled:
		return e.Code == Canceled
	case context.DeadlineExceeded:
		return e.Code == DeadlineExceeded
	case ErrTimeout:
		return e.Code == DeadlineExceeded || e.Category == ErrTimeout
	case ErrUnknownMethod:
		return e.Category == ErrUnknownMethod
	case ErrIO:
		// Local file and device failures (a certificate that cannot be
		// read) are I/O errors whatever their category.
		var pe *fs.PathError
		return e.Category == ErrIO || errors.As(e.Cause, &pe)
	}
	return e.Category != nil && e.Category == target
}

// categoryOf gives the category a code implies when nothing more specific
// is known (errors that arrive over the wire).
func categoryOf(c Code) error {
	switch c {
	case DeadlineExceeded:
		return ErrTimeout
	case Unavailable:
		return ErrConnection
	}
	return nil
}

// CategoryOf is categoryOf for decoders in other packages.
func CategoryOf(c Code) error { return categoryOf(c) }

// Foreign converts the error type of a layer above (the root package's
// arbor.Error, which handlers and callbacks return) into an *Error, or
// returns nil. The root package sets it when it initializes; it is never
// changed afterwards.
var Foreign func(err error) *Error

// FromError converts any error into an *Error: the outermost error of
// either type in the chain wins, an *Error returned as is, an arbor.Error
// converted; context errors become Canceled/DeadlineExceeded, anything
// else is Unknown wrapping it.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	if Foreign != nil { // nil unless an arbor.Error comes before any *Error
		if e := Foreign(err); e != nil {
			return e
		}
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Wrap(Canceled, nil, err, "")
	case errors.Is(err, context.DeadlineExceeded):
		return Wrap(DeadlineExceeded, ErrTimeout, err, "")
	}
	return Wrap(Unknown, nil, err, "")
}

// CodeOf returns the code of err: OK for nil, Unknown for a foreign error.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	return FromError(err).Code
}

// categories lists the category sentinels in wire order: a category travels
// as its index + 1 (0 = none).
var categories = [...]error{ErrConnection, ErrStream, ErrTLS, ErrConfig, ErrIO, ErrSerialization, ErrTimeout, ErrUnknownMethod, ErrProtocol}

// CategoryID is the wire number of a category (0 for nil or unknown).
func CategoryID(cat error) uint8 {
	for i, c := range categories {
		if c == cat {
			return uint8(i + 1)
		}
	}
	return 0
}

// CategoryFromID is the inverse of CategoryID; unknown ids give nil.
func CategoryFromID(id uint8) error {
	if id == 0 || int(id) > len(categories) {
		return nil
	}
	return categories[id-1]
}
