package arbor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/arbor-rpc/arbor/internal/status"
)

// Code classifies an error. The numbering is gRPC's, so that codes read
// the same to people who know it (and map one to one onto gRPC status
// codes); it is Arbor's own wire value.
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

func (c Code) String() string { return status.Code(c).String() }

// ParseCode is the inverse of Code.String ("NotFound" → NotFound).
func ParseCode(s string) (Code, bool) {
	c, ok := status.ParseCode(s)
	return Code(c), ok
}

// Error is the error every call returns, the same on both sides of the
// wire. Read it with errors.As; compare codes with errors.Is against the
// Err* code sentinels (errors.Is(err, arbor.ErrNotFound)) or with CodeOf;
// ask about the kind of failure with the category sentinels
// (errors.Is(err, arbor.ErrConnection)).
//
// A handler returns one (NewError, Errorf) to choose the code its caller
// sees; any other error reaches the caller as Unknown with its text.
type Error struct {
	Code    Code
	Message string
	// Details is opaque data for the caller (a serialized detail message,
	// say); it travels as is.
	Details []byte
	// Retryable says the call may succeed if made again (the server was
	// going away, say). Retries and the cluster client honour it.
	Retryable bool
	// Category is one of the category sentinels (ErrConnection, ...) or
	// nil. It travels with the error.
	Category error
	// Cause is the local error this one wraps, if any. It does not travel.
	Cause error

	sentinel bool
}

// NewError returns an error with a code and message.
func NewError(c Code, msg string) *Error {
	return &Error{Code: c, Message: msg, Category: status.CategoryOf(status.Code(c))}
}

// Errorf is NewError with formatting.
func Errorf(c Code, format string, args ...any) *Error {
	return NewError(c, fmt.Sprintf(format, args...))
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Unwrap exposes the local cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches the code sentinels (any Error with that code), the category
// sentinels, and context.Canceled and context.DeadlineExceeded (the codes
// of the same name).
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		if t.sentinel {
			return t.Code == e.Code
		}
		return t == e
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
	case ErrIO:
		// Local file and device failures (a certificate that cannot be
		// read) are I/O errors whatever their category.
		var pe *fs.PathError
		return e.Category == ErrIO || errors.As(e.Cause, &pe)
	}
	return e.Category != nil && e.Category == target
}

// Code sentinels: errors.Is(err, arbor.ErrNotFound) is true for any Error
// with code NotFound, whatever its message. There is one for every code.
var (
	ErrCanceled           = &Error{Code: Canceled, sentinel: true}
	ErrUnknown            = &Error{Code: Unknown, sentinel: true}
	ErrInvalidArgument    = &Error{Code: InvalidArgument, sentinel: true}
	ErrDeadlineExceeded   = &Error{Code: DeadlineExceeded, sentinel: true}
	ErrNotFound           = &Error{Code: NotFound, sentinel: true}
	ErrAlreadyExists      = &Error{Code: AlreadyExists, sentinel: true}
	ErrPermissionDenied   = &Error{Code: PermissionDenied, sentinel: true}
	ErrResourceExhausted  = &Error{Code: ResourceExhausted, sentinel: true}
	ErrFailedPrecondition = &Error{Code: FailedPrecondition, sentinel: true}
	ErrAborted            = &Error{Code: Aborted, sentinel: true}
	ErrOutOfRange         = &Error{Code: OutOfRange, sentinel: true}
	ErrUnimplemented      = &Error{Code: Unimplemented, sentinel: true}
	ErrInternal           = &Error{Code: Internal, sentinel: true}
	ErrUnavailable        = &Error{Code: Unavailable, sentinel: true}
	ErrDataLoss           = &Error{Code: DataLoss, sentinel: true}
	ErrUnauthenticated    = &Error{Code: Unauthenticated, sentinel: true}
)

// Category sentinels: broad kinds of failure (RpcNet's), independent of
// the code.
var (
	ErrConnection    = status.ErrConnection    // the connection failed or closed
	ErrStream        = status.ErrStream        // a stream failed
	ErrTLS           = status.ErrTLS           // TLS configuration or handshake
	ErrConfig        = status.ErrConfig        // invalid configuration
	ErrIO            = status.ErrIO            // local I/O
	ErrSerialization = status.ErrSerialization // arguments or result could not be encoded or decoded
	ErrTimeout       = status.ErrTimeout       // a deadline or keep-alive expired
	ErrUnknownMethod = status.ErrUnknownMethod // the function or method is not in the server's catalog
	ErrProtocol      = status.ErrProtocol      // the peer broke the wire protocol
)

// CodeOf returns err's code: OK for nil, the code of an *Error in its
// chain, Canceled and DeadlineExceeded for the context errors, Unknown
// otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Code(status.CodeOf(err))
}

// outermost finds the first error of either type along err's chain:
// a lower layer may wrap an *Error in a *status.Error (adding the path of
// a request tree, say) and the other way round.
func outermost(err error) (*Error, *status.Error) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch x := e.(type) {
		case *Error:
			return x, nil
		case *status.Error:
			return nil, x
		}
	}
	return nil, nil
}

// fromStatus converts the lower layers' errors (conn, transport, resolve)
// into *Error where they reach users; other errors pass unchanged.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	e, se := outermost(err)
	if se == nil || e != nil {
		return err
	}
	return &Error{Code: Code(se.Code), Message: se.Message, Details: se.Details, Retryable: se.Retryable,
		Category: se.Category, Cause: se.Cause}
}

func init() {
	status.AsForeign = func(se *status.Error, target any) bool {
		p, ok := target.(**Error)
		if !ok {
			return false
		}
		*p = &Error{Code: Code(se.Code), Message: se.Message, Details: se.Details, Retryable: se.Retryable,
			Category: se.Category, Cause: se.Cause}
		return true
	}
	status.IsForeign = func(se *status.Error, target error) (bool, bool) {
		t, ok := target.(*Error)
		if !ok {
			return false, false
		}
		if t.sentinel {
			return Code(se.Code) == t.Code, true
		}
		return false, true
	}
	status.Foreign = func(err error) *status.Error {
		e, _ := outermost(err)
		if e == nil {
			return nil
		}
		return &status.Error{Code: status.Code(e.Code), Message: e.Message, Details: e.Details, Retryable: e.Retryable,
			Category: e.Category, Cause: err}
	}
}

// toStatus converts a handler's error for the wire: an *Error keeps its
// code, anything else is as the lower layers see it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	e, _ := outermost(err)
	if e == nil {
		return err
	}
	return &status.Error{Code: status.Code(e.Code), Message: e.Message, Details: e.Details, Retryable: e.Retryable,
		Category: e.Category, Cause: e.Cause}
}

// wrapErr makes an *Error with the code and category whose message is
// msg + ": " + the cause's.
func wrapErr(c Code, category, cause error, msg string) *Error {
	m := msg
	if cause != nil {
		if m != "" {
			m += ": "
		}
		m += cause.Error()
	}
	if category == nil {
		category = status.CategoryOf(status.Code(c))
	}
	return &Error{Code: c, Message: m, Category: category, Cause: cause}
}

// asError converts any error into an *Error (Unknown for foreign ones).
func asError(err error) *Error {
	if err == nil {
		return nil
	}
	err = fromStatus(err)
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.Canceled):
		return wrapErr(Canceled, nil, err, "")
	case errors.Is(err, context.DeadlineExceeded):
		return wrapErr(DeadlineExceeded, ErrTimeout, err, "")
	}
	return wrapErr(Unknown, nil, err, "")
}
