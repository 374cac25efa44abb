package resolve

// This file holds argument normalisation: bringing a tree's literal
// argument values into one encoding per value before anything is keyed,
// for functions whose argument types have several (protobuf messages:
// binary or protojson).

import (
	"bytes"
	"fmt"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// ArgNormalizer brings argument i of a function, one canonical msgpack
// value, into the normal form of its type: equal values of the type give
// equal bytes. It returns v itself when v is normal already, and an
// error when v is no value of the type.
type ArgNormalizer func(i int, v []byte) ([]byte, error)

// Normalizer is implemented by a Catalog some of whose functions take
// arguments with more than one encoding of the same value. The engine
// then normalises the literal arguments of every request of a tree whose
// content key they enter (the request's, or an ancestor's, level is
// cached) before it keys anything, and the results of subrequests that a
// value-based level keys on; the function runs with the normalised
// values. Without it, values are keyed as given (canonical msgpack).
type Normalizer interface {
	// ArgNormalizer returns function id's normaliser, or nil when its
	// arguments need none. It is asked once per request of each tree:
	// keep it cheap.
	ArgNormalizer(id string) ArgNormalizer
}

// normalize returns n with the literal arguments of its keyed requests
// normalised: n itself when nothing changes, otherwise a copy sharing
// what did not (the caller's tree is never modified). base is n's path in
// the tree it belongs to (nil for a root).
func (e *Engine) normalize(n *request.Node, base *request.Path) (*request.Node, error) {
	if e.norm == nil {
		return n, nil
	}
	out, f := e.normalizeNode(n, false)
	if f == nil {
		return out, nil
	}
	// The failing request's path, built only now: paths built on the way
	// down would cost an allocation per request of every tree.
	p := base
	chain := make([]request.Path, len(f.up))
	for j := len(f.up) - 1; j >= 0; j-- {
		chain[j] = p.Child(f.up[j])
		p = &chain[j]
	}
	return nil, nodeError(p, f.n, f.err)
}

// normFailure is a value a normaliser refused: in request n, whose
// argument indexes from its parent up to the root are up.
type normFailure struct {
	n   *request.Node
	err error
	up  []int
}

// normalizeNode is normalize below the root; keyed says an ancestor's
// key covers n.
func (e *Engine) normalizeNode(n *request.Node, keyed bool) (*request.Node, *normFailure) {
	keyed = keyed || n.Level().Cached()
	var norm ArgNormalizer
	if keyed {
		norm = e.norm.ArgNormalizer(n.ID)
	}
	var args []request.Arg // copied on the first change
	for i, a := range n.Args {
		if a.Node != nil {
			sub, f := e.normalizeNode(a.Node, keyed)
			if f != nil {
				f.up = append(f.up, i)
				return nil, f
			}
			if sub != a.Node {
				args = setArg(args, n.Args, i, request.Sub(sub))
			}
			continue
		}
		if norm == nil {
			continue
		}
		v, err := normalizeArg(norm, i, a.Value)
		if err != nil {
			return nil, &normFailure{n: n, err: err}
		}
		if !bytes.Equal(v, a.Value) {
			args = setArg(args, n.Args, i, request.Arg{Value: v})
		}
	}
	if args == nil {
		return n, nil
	}
	c := *n
	c.Args = args
	return &c, nil
}

// setArg sets args[i] to a, copying from into args first if it is nil.
func setArg(args, from []request.Arg, i int, a request.Arg) []request.Arg {
	if args == nil {
		args = append([]request.Arg(nil), from...)
	}
	args[i] = a
	return args
}

// normalizeArg runs norm on argument i, turning a failure (and a panic:
// the normaliser stands for code the engine does not know) into an
// InvalidArgument error naming the argument.
func normalizeArg(norm ArgNormalizer, i int, v []byte) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, status.Errorf(status.Internal, "argument %d: normalising the value panicked: %v", i, p)
		}
	}()
	out, err = norm(i, v)
	if err != nil {
		return nil, status.Wrap(status.InvalidArgument, status.ErrSerialization, err, fmt.Sprintf("argument %d", i))
	}
	return out, nil
}

// normalizeResults normalises, in place, the values of n's subrequest
// arguments (their results) before a value-based level keys on them.
func (e *Engine) normalizeResults(n *request.Node, path *request.Path, values [][]byte) error {
	if e.norm == nil {
		return nil
	}
	norm := e.norm.ArgNormalizer(n.ID)
	if norm == nil {
		return nil
	}
	for i, a := range n.Args {
		if a.Node == nil {
			continue // literal: normalised with the tree
		}
		v, err := normalizeArg(norm, i, values[i])
		if err != nil {
			return nodeError(path, n, err)
		}
		values[i] = v
	}
	return nil
}
