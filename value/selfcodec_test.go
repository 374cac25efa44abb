package value

import (
	"errors"
	"strings"
	"testing"
)

// selfMsg encodes itself as a str holding its text.
type selfMsg struct{ text string }

func (m *selfMsg) AppendMsgpack(b []byte, host any) ([]byte, error) {
	if m.text == "fail" {
		return b, errors.New("cannot encode fail")
	}
	if h, ok := host.(string); ok {
		return AppendString(b, h+":"+m.text), nil
	}
	return AppendString(b, m.text), nil
}

func (m *selfMsg) ReadMsgpack(r *Reader, host any) error {
	s, err := r.ReadString()
	if err != nil {
		return err
	}
	if s == "bad" {
		return errors.New("bad text")
	}
	m.text = s
	if h, ok := host.(string); ok {
		m.text = h + "/" + s
	}
	return nil
}

func TestSelfCodec(t *testing.T) {
	c := For[*selfMsg]()
	b, err := c.Append(nil, &selfMsg{text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(b)
	m, err := c.Decode(&r)
	if err != nil || m.text != "hi" || len(r.Rest()) != 0 {
		t.Fatalf("round trip: %v, %v", m, err)
	}
	// nil both ways.
	if b, _ := c.Append(nil, nil); string(b) != "\xc0" {
		t.Fatalf("nil encoded as %x", b)
	}
	r = NewReader([]byte{0xc0})
	if m, err := c.Decode(&r); err != nil || m != nil {
		t.Fatalf("nil decoded as %v, %v", m, err)
	}
	// The host reaches the methods.
	b, _ = c.AppendHost(nil, &selfMsg{text: "x"}, "h")
	r = NewReader(b)
	if m, err := c.DecodeHost(&r, "d"); err != nil || m.text != "d/h:x" {
		t.Fatalf("host: %v, %v", m, err)
	}
	// Errors name the type, and a failed decode leaves the offset alone.
	if _, err := c.Append(nil, &selfMsg{text: "fail"}); err == nil || !strings.Contains(err.Error(), "cannot encode fail") {
		t.Fatalf("encode error: %v", err)
	}
	r = NewReader(AppendString(nil, "bad"))
	if _, err := c.Decode(&r); err == nil || !strings.Contains(err.Error(), "expected *value.selfMsg: bad text") || r.Offset() != 0 {
		t.Fatalf("decode error: %v at %d", err, r.Offset())
	}
	r = NewReader(AppendInt(nil, 3))
	if _, err := c.Decode(&r); err == nil || !strings.Contains(err.Error(), "expected *value.selfMsg") {
		t.Fatalf("wrong kind: %v", err)
	}
	// Inside a struct the plan still carries it.
	type wrap struct{ M *selfMsg }
	wb, err := For[wrap]().Append(nil, wrap{M: &selfMsg{text: "in"}})
	if err != nil {
		t.Fatal(err)
	}
	r = NewReader(wb)
	if w, err := For[wrap]().Decode(&r); err != nil || w.M.text != "in" {
		t.Fatalf("in a struct: %v, %v", w, err)
	}
}
