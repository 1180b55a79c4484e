// Package configmap carries a template module in a ConfigMap and mounts it
// back into the operator's pod as the module's directory tree, through a
// projected volume whose items put each key at its file's path. An operator
// run with --templates on that mount follows updates of the ConfigMap live.
package configmap

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxSize is what the API server accepts in a ConfigMap's data and
// binaryData together.
const maxSize = 1 << 20

var validKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// Module is a template module packed into a ConfigMap.
type Module struct {
	ConfigMap *corev1.ConfigMap
	// Items put each key of the ConfigMap back at its file's path.
	Items []corev1.KeyToPath
}

// Pack puts files (content by slash-separated path in the module, as
// render.ModuleFiles reads them) into the ConfigMap name in namespace, one
// key per file: its path with "/" written "_".
func Pack(files map[string][]byte, name, namespace string) (*Module, error) {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	m := &Module{ConfigMap: cm}
	byKey := map[string]string{}
	size := 0
	for _, p := range paths {
		key := strings.ReplaceAll(p, "/", "_")
		if !validKey.MatchString(key) || len(key) > 253 {
			return nil, fmt.Errorf("template file %s: a ConfigMap key holds only letters, digits, '-', '_' and '.' (at most 253): rename the file", p)
		}
		if other, taken := byKey[key]; taken {
			return nil, fmt.Errorf("template files %s and %s would share the ConfigMap key %s: rename one", other, p, key)
		}
		byKey[key] = p
		content := files[p]
		size += len(key) + len(content)
		// Text stays readable in data; anything else goes to binaryData.
		if utf8.Valid(content) {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[key] = string(content)
		} else {
			if cm.BinaryData == nil {
				cm.BinaryData = map[string][]byte{}
			}
			cm.BinaryData[key] = content
		}
		m.Items = append(m.Items, corev1.KeyToPath{Key: key, Path: path.Clean(p)})
	}
	if size > maxSize {
		return nil, fmt.Errorf("the template module is %d bytes, more than a ConfigMap holds (%d)", size, maxSize)
	}
	return m, nil
}

// Volume is the projected volume that mounts the module as its tree.
func (m *Module) Volume(name string) corev1.Volume {
	return corev1.Volume{
		Name: name,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: m.ConfigMap.Name},
				Items:                m.Items,
			}}},
		}},
	}
}

// ManagerPatch is a JSON patch (RFC 6902) of the operator's Deployment,
// whose first container is the manager: it mounts the module read-only at
// dir and runs the manager with --templates dir.
func (m *Module) ManagerPatch(dir string) []map[string]any {
	const volume = "templates"
	return []map[string]any{
		{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--templates=" + dir},
		{"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts", "value": []corev1.VolumeMount{{Name: volume, MountPath: dir, ReadOnly: true}}},
		{"op": "add", "path": "/spec/template/spec/volumes", "value": []corev1.Volume{m.Volume(volume)}},
	}
}
