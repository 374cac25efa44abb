package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/arbor-rpc/arbor"
)

// kindOf asks the server's catalog what kind of function fn is; unknown
// functions count as unary (the call then fails with NotFound).
func kindOf(ctx context.Context, c arbor.Caller, fn string) (arbor.Kind, error) {
	infos, err := arbor.Call0[[]arbor.FunctionInfo](ctx, c, arbor.CatalogFunction)
	if err != nil {
		return "", err
	}
	for _, f := range infos {
		if f.ID == fn {
			return f.Kind, nil
		}
	}
	return arbor.KindUnary, nil
}

// callStream drives a streaming function: a server stream prints each
// message as a JSON line; client and bidirectional streams send every JSON
// value read from stdin (whitespace-separated, e.g. one per line).
func callStream(ctx context.Context, c arbor.Caller, kind arbor.Kind, fn string, values []any, stdout io.Writer, view *protoView) error {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	switch kind {
	case arbor.KindServerStream:
		if len(values) != 1 {
			return arbor.Errorf(arbor.InvalidArgument, "%s is a server stream and takes one argument, got %d", fn, len(values))
		}
		s, err := arbor.CallServerStream[any](ctx, c, fn, values[0])
		if err != nil {
			return err
		}
		for {
			m, err := s.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			v, err := view.view(m)
			if err != nil {
				return err
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
	case arbor.KindClientStream:
		if len(values) != 0 {
			return arbor.Errorf(arbor.InvalidArgument, "%s is a client stream: its messages come from stdin, not arguments", fn)
		}
		s, err := arbor.OpenClientStream[any, any](ctx, c, fn)
		if err != nil {
			return err
		}
		if err := sendStdin(fn, s.Send); err != nil {
			return err
		}
		res, err := s.CloseAndRecv()
		if err == nil {
			res, err = view.view(res)
		}
		if err != nil {
			return err
		}
		return enc.Encode(res)
	case arbor.KindBidiStream:
		if len(values) != 0 {
			return arbor.Errorf(arbor.InvalidArgument, "%s is a bidirectional stream: its messages come from stdin, not arguments", fn)
		}
		s, err := arbor.OpenBidiStream[any, any](ctx, c, fn)
		if err != nil {
			return err
		}
		sent := make(chan error, 1)
		go func() {
			err := sendStdin(fn, s.Send)
			s.CloseSend()
			sent <- err
		}()
		for {
			m, err := s.Recv()
			if err == io.EOF {
				return <-sent
			}
			if err != nil {
				return err
			}
			v, err := view.view(m)
			if err != nil {
				return err
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
	}
	return arbor.Errorf(arbor.Unimplemented, "%s is a %s function, which arbor call cannot drive", fn, kind)
}

// sendStdin sends every JSON value on stdin.
func sendStdin(fn string, send func(any) error) error {
	dec := json.NewDecoder(stdin)
	dec.UseNumber()
	for i := 0; ; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return arbor.Errorf(arbor.InvalidArgument, "%s: stdin value %d is not JSON: %v", fn, i, err)
		}
		if err := send(v); err != nil {
			return err
		}
	}
}
