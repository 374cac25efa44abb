package arbor

import "github.com/arbor-rpc/arbor/internal/status"

// Error is the error every call returns: a code, a message, optional
// details and a retryable flag, the same on both sides of the wire. Read it
// with errors.As; compare codes with errors.Is against the Err* code
// sentinels, or with CodeOf.
type Error = status.Error

// Code classifies an error.
type Code = status.Code

// The codes.
const (
	OK                 = status.OK
	Canceled           = status.Canceled
	Unknown            = status.Unknown
	InvalidArgument    = status.InvalidArgument
	DeadlineExceeded   = status.DeadlineExceeded
	NotFound           = status.NotFound
	AlreadyExists      = status.AlreadyExists
	PermissionDenied   = status.PermissionDenied
	ResourceExhausted  = status.ResourceExhausted
	FailedPrecondition = status.FailedPrecondition
	Aborted            = status.Aborted
	OutOfRange         = status.OutOfRange
	Unimplemented      = status.Unimplemented
	Internal           = status.Internal
	Unavailable        = status.Unavailable
	DataLoss           = status.DataLoss
	Unauthenticated    = status.Unauthenticated
)

// Code sentinels: errors.Is(err, arbor.ErrNotFound) is true for any Error
// with code NotFound, whatever its message.
var (
	ErrCanceled           = status.Sentinel(Canceled)
	ErrInvalidArgument    = status.Sentinel(InvalidArgument)
	ErrDeadlineExceeded   = status.Sentinel(DeadlineExceeded)
	ErrNotFound           = status.Sentinel(NotFound)
	ErrPermissionDenied   = status.Sentinel(PermissionDenied)
	ErrFailedPrecondition = status.Sentinel(FailedPrecondition)
	ErrAborted            = status.Sentinel(Aborted)
	ErrResourceExhausted  = status.Sentinel(ResourceExhausted)
	ErrUnimplemented      = status.Sentinel(Unimplemented)
	ErrInternal           = status.Sentinel(Internal)
	ErrUnavailable        = status.Sentinel(Unavailable)
	ErrUnauthenticated    = status.Sentinel(Unauthenticated)
)

// Category sentinels: broad kinds of failure, independent of the code.
var (
	ErrConnection    = status.ErrConnection    // the connection failed or closed
	ErrStream        = status.ErrStream        // a stream failed
	ErrTLS           = status.ErrTLS           // TLS configuration or handshake
	ErrConfig        = status.ErrConfig        // invalid configuration
	ErrIO            = status.ErrIO            // local I/O
	ErrSerialization = status.ErrSerialization // arguments or result could not be encoded or decoded
	ErrTimeout       = status.ErrTimeout       // a deadline or keep-alive expired
	ErrUnknownMethod = status.ErrUnknownMethod // the function is not in the server's catalog
	ErrProtocol      = status.ErrProtocol      // the peer broke the wire protocol
)

// NewError returns an error with a code and message; handlers return it to
// choose the code the caller sees.
func NewError(c Code, msg string) *Error { return status.New(c, msg) }

// Errorf is NewError with formatting.
func Errorf(c Code, format string, args ...any) *Error { return status.Errorf(c, format, args...) }

// CodeOf returns err's code: OK for nil, Unknown for an error that is not
// an *Error (context errors map to Canceled and DeadlineExceeded).
func CodeOf(err error) Code { return status.CodeOf(err) }
