package request

// This file holds how ParseJSON turns a JSON value in argument position
// into canonical msgpack: scalars, arrays, objects as sorted maps, blobs.

import (
	"bytes"
	"encoding/base64"
	"math"
	"strconv"

	"github.com/arbor-rpc/arbor/value"
)

// value appends the canonical msgpack of the JSON value at off to
// p.canon.out.
func (p *jsonParser) value(off, depth int) *jsonErr {
	if depth > p.lim.Value.MaxDepth {
		return jerrorf(off, "value nested deeper than %d", p.lim.Value.MaxDepth)
	}
	d := p.data
	c := &p.canon
	switch d[off] {
	case 'n':
		c.out = value.AppendNil(c.out)
	case 't':
		c.out = value.AppendBool(c.out, true)
	case 'f':
		c.out = value.AppendBool(c.out, false)
	case '"':
		s, _ := p.str(off)
		if len(s) > p.lim.Value.MaxLength {
			return jerrorf(off, "string of %d bytes exceeds the limit %d", len(s), p.lim.Value.MaxLength)
		}
		c.out = appendStrHeader(c.out, len(s))
		c.out = append(c.out, s...)
	case '[':
		n := int(p.span(off).n)
		if n > p.lim.Value.MaxLength {
			return jerrorf(off, "array of %d elements exceeds the limit %d", n, p.lim.Value.MaxLength)
		}
		c.out = value.AppendArrayHeader(c.out, n)
		it := p.iter(off)
		for i := 0; ; i++ {
			e, ok := it.elem()
			if !ok {
				break
			}
			if d[e] == '{' && p.isRequest(e) {
				return jerrorf(e, "a subrequest may only be a request argument, not part of a value").in(indexElem(i))
			}
			if err := p.value(e, depth+1); err != nil {
				return err.in(indexElem(i))
			}
		}
	case '{':
		return p.object(off, depth)
	default:
		return p.number(off)
	}
	return nil
}

// object appends a JSON object as a msgpack map with its entries in
// canonical order, or as bin if it is a blob.
func (p *jsonParser) object(off, depth int) *jsonErr {
	if _, _, asFile := p.classify(off); asFile {
		return p.blob(off)
	}
	c := &p.canon
	n := int(p.span(off).n)
	if n > p.lim.Value.MaxLength {
		return jerrorf(off, "object of %d members exceeds the limit %d", n, p.lim.Value.MaxLength)
	}
	c.out = value.AppendMapHeader(c.out, n)
	base := len(c.out)
	sorted := true
	pk, pv := 0, 0
	it := p.iter(off)
	for m, ok := it.member(); ok; m, ok = it.member() {
		if p.data[m.val] == '{' && p.isRequest(m.val) {
			return jerrorf(m.val, "a subrequest may only be a request argument, not part of a value").in(p.keyElem(m))
		}
		k := len(c.out)
		key, _ := p.str(m.key)
		c.out = appendStrHeader(c.out, len(key))
		c.out = append(c.out, key...)
		v := len(c.out)
		if err := p.value(m.val, depth+1); err != nil {
			return err.in(p.keyElem(m))
		}
		if k > base && sorted && bytes.Compare(c.out[pk:pv], c.out[k:v]) >= 0 {
			sorted = false
		}
		pk, pv = k, v
	}
	if sorted {
		return nil
	}
	dup, isDup := c.sortMap(base, n, p.lim.Value)
	if !isDup {
		return nil
	}
	it = p.iter(off)
	m, _ := it.member()
	for range dup {
		m, _ = it.member()
	}
	k, _ := p.str(m.key)
	return jerrorf(m.key, "duplicate key %s", quoteInput(k))
}

// number appends a JSON number: an integer if it has no fraction or
// exponent and fits 64 bits, a float64 otherwise.
func (p *jsonParser) number(off int) *jsonErr {
	num := p.data[off:p.valueEnd(off)]
	if u, neg, ok := parseJSONInt(num); ok {
		switch {
		case !neg:
			p.canon.out = value.AppendUint(p.canon.out, u)
			return nil
		case u <= 1<<63:
			p.canon.out = value.AppendInt(p.canon.out, int64(-u))
			return nil
		}
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || math.IsInf(f, 0) {
		return jerrorf(off, "number %s is out of range", clipInput(num))
	}
	p.canon.out = value.AppendFloat64(p.canon.out, f)
	return nil
}

// The fields of a blob object.
var blobFields = [...]string{"as_file", "size", "blob"}

// blob appends {"as_file": false, "size": N, "blob": "<base64>"} as bin.
func (p *jsonParser) blob(off int) *jsonErr {
	var size int64 = -1
	dataOff := -1
	seen := 0
	it := p.iter(off)
	for m, ok := it.member(); ok; m, ok = it.member() {
		field := -1
		for i, name := range blobFields {
			if p.keyIs(m, name) {
				field = i
				break
			}
		}
		if field < 0 {
			k, _ := p.str(m.key)
			return jerrorf(m.key, "unexpected key %s in a blob (want as_file, size, blob)", quoteInput(k))
		}
		if seen&(1<<field) != 0 {
			return jerrorf(m.key, "duplicate key %q", blobFields[field])
		}
		seen |= 1 << field
		name := blobFields[field]
		switch field {
		case 0:
			c := p.data[m.val]
			if c != 't' && c != 'f' {
				return jerrorf(m.val, "want a boolean, got %s", p.describe(m.val)).in(name)
			}
			if c == 't' {
				return jerrorf(m.val, "file blobs (as_file: true) are not supported; send the data inline").in(name)
			}
		case 1:
			x, err := p.int64Field(m.val)
			if err != nil {
				return err.in(name)
			}
			size = x
		case 2:
			if p.data[m.val] != '"' {
				return jerrorf(m.val, "want a base64 string, got %s", p.describe(m.val)).in(name)
			}
			dataOff = m.val
		}
	}
	if size < 0 {
		return jerrorf(off, "blob has no \"size\"")
	}
	if size > int64(p.lim.Value.MaxLength) {
		return jerrorf(off, "blob of %d bytes exceeds the limit %d", size, p.lim.Value.MaxLength)
	}
	if dataOff < 0 {
		if size != 0 {
			return jerrorf(off, "blob has size %d but no \"blob\" data", size)
		}
		p.canon.out = appendBinHeader(p.canon.out, 0)
		return nil
	}
	text, _ := p.str(dataOff)
	data, err := p.base64(text)
	if err != nil {
		return jerrorf(dataOff, "blob is not valid base64: %v", err).in("blob")
	}
	if int64(len(data)) != size {
		return jerrorf(off, "blob size %d disagrees with its data (%d bytes)", size, len(data))
	}
	p.canon.out = appendBinHeader(p.canon.out, len(data))
	p.canon.out = append(p.canon.out, data...)
	return nil
}

// base64 decodes padded or unpadded standard base64 into p.bbuf.
func (p *jsonParser) base64(text []byte) ([]byte, error) {
	n := base64.StdEncoding.DecodedLen(len(text)) + 2
	if cap(p.bbuf) < n {
		p.bbuf = make([]byte, n)
	}
	buf := p.bbuf[:n]
	k, err := base64.StdEncoding.Decode(buf, text)
	if err != nil {
		k, err = base64.RawStdEncoding.Decode(buf, text)
	}
	return buf[:k], err
}
