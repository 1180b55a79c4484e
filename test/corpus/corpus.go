// Package corpus reads the CR corpus: valid/*.yaml must be accepted and
// invalid/*.yaml rejected by the API server, cue vet and cuerator vet alike.
// It also generates invalid CRs from the kinds' CRDs (generate.go).
package corpus

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// RejectedField reads the "# rejects: <field>" header of an invalid CR
// file: the field every tool must name when it refuses the file.
func RejectedField(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readRejectsHeader(f, path)
}

func readRejectsHeader(r io.Reader, name string) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if field, ok := strings.CutPrefix(sc.Text(), "# rejects: "); ok {
			return field, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no '# rejects: <field>' header", name)
}

// Names reports whether message names the field path: the path stands
// whole, neither the start of a longer name (spec.replica in spec.replicas)
// nor the end of a longer path (tls.secretName in spec.tls.secretName); a
// path below it (spec.storage.size for spec.storage) counts. A list's item
// may be named as CUE names it (spec.nodeSets.0) or as the API server does
// (spec.nodeSets[0]).
func Names(message, field string) bool {
	return namesAsWritten(message, field) || namesAsWritten(message, listIndex.ReplaceAllString(field, "[$1]"))
}

// listIndex is a path segment that is a list index.
var listIndex = regexp.MustCompile(`\.([0-9]+)\b`)

func namesAsWritten(message, field string) bool {
	for from := 0; ; {
		i := strings.Index(message[from:], field)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(field)
		if (start == 0 || !isNameByte(message[start-1]) && message[start-1] != '.') && (end == len(message) || !isNameByte(message[end])) {
			return true
		}
		from = start + 1
	}
}

func isNameByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
