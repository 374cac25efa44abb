// Package typecache is a cache of one value per Go type, read on every
// call (a type's codec, whether its values may hold capabilities): a hit
// is a multiply, one atomic load and a pointer comparison, where a
// sync.Map keyed by reflect.Type hashes the interface first. It is not a
// general map: values are computed once per type and never change, and
// the number of types is the program's, not a peer's.
package typecache

import (
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The direct-mapped part has 1<<bits slots.
const bits = 8

// Cache holds one V per type. The zero Cache is ready to use.
type Cache[V any] struct {
	hot [1 << bits]atomic.Pointer[entry[V]] // by the type's address; a miss falls to all
	all sync.Map                            // reflect.Type → *entry[V]
}

type entry[V any] struct {
	t unsafe.Pointer // the type's descriptor
	v V
}

// Get returns the value of t, made by mk the first time (mk may run more
// than once for a type when goroutines race; one result is kept).
func (c *Cache[V]) Get(t reflect.Type, mk func(reflect.Type) V) V {
	p := typePtr(t)
	slot := &c.hot[uint64(uintptr(p))*0x9E3779B97F4A7C15>>(64-bits)]
	if e := slot.Load(); e != nil && e.t == p {
		return e.v
	}
	var e *entry[V]
	if v, ok := c.all.Load(t); ok {
		e = v.(*entry[V])
	} else {
		v, _ := c.all.LoadOrStore(t, &entry[V]{t: p, v: mk(t)})
		e = v.(*entry[V])
	}
	slot.Store(e) // an entry made once: two types sharing a slot cost no allocation
	return e.v
}

// typePtr is the address of t's descriptor: the data word of the
// reflect.Type interface, one per type for the life of the program.
func typePtr(t reflect.Type) unsafe.Pointer {
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&t))[1]
}
