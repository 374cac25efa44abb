package request_test

import (
	"fmt"

	"github.com/arbor-rpc/arbor/request"
)

func ExampleParseJSON() {
	n, err := request.ParseJSON([]byte(`{
		"uuid": "rq_post_iss_object+full", "title": "post_iss_object",
		"args": {"tuple_element0": "123", "tuple_element1": "string",
		         "tuple_element2": {"uuid": "uuid_100_2", "title": "make_blob_coro",
		                            "args": {"tuple_element0": {"value0": "payload"}}}}}`), request.Limits{})
	if err != nil {
		panic(err)
	}
	fmt.Println(n.ID, n.Level(), len(n.Args), n.Args[2].Node.Title)
	// Output: rq_post_iss_object+full full 3 make_blob_coro
}

func ExampleNew() {
	tree := request.New("add+mem", request.New("add", 1, 2).WithTitle("inner"), 3)
	out, err := tree.MarshalJSON()
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	// Output: {"uuid":"add+mem","title":"","args":{"tuple_element0":{"uuid":"add","title":"inner","args":{"tuple_element0":1,"tuple_element1":2}},"tuple_element1":3}}
}

func ExampleNode_Key() {
	a := request.New("f", "ab", "c")
	b := request.New("f", "a", "bc")
	fmt.Println(a.Key() == b.Key(), a.Key() == request.New("f", "ab", "c").WithTitle("same").Key())
	// Output: false true
}
