package arbor

import (
	"slices"
	"strconv"
	"strings"
)

func sortInfos(fs []FunctionInfo) {
	slices.SortFunc(fs, func(a, b FunctionInfo) int { return strings.Compare(a.ID, b.ID) })
}

func quote(b []byte) string { return strconv.Quote(string(b)) }
