// Package corpus reads the CR corpus: valid/*.yaml must be accepted and
// invalid/*.yaml rejected by the API server, cue vet and cuerator vet alike.
package corpus

import (
	"bufio"
	"fmt"
	"os"
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
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if field, ok := strings.CutPrefix(sc.Text(), "# rejects: "); ok {
			return field, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no '# rejects: <field>' header", path)
}
