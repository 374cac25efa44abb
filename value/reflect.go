package value

import (
	"fmt"

	"github.com/shamaton/msgpack/v2"
)

func marshalReflect(v any) ([]byte, error) {
	p, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return p, nil
}
