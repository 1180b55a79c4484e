// Package convert is the operator's side of a kind's versions: the
// ConversionReview webhook the API server calls to convert a CR between
// the versions its CRD serves, the certificate it serves with, and the
// storage migration that rewrites every CR once the storage version
// changes. The conversions themselves are CUE (render.Kind.Convert); this
// package knows the API server's protocols and never applies children.
package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cuerator/cuerator/render"
)

// maxReviewBytes bounds a ConversionReview's body. The API server sends a
// whole list's objects in one review; etcd holds objects of 1.5 MiB at
// most, and a page of a list (500 objects) of them is far beyond any CR
// a template renders.
const maxReviewBytes = 64 << 20

// Handler serves apiextensions.k8s.io/v1 ConversionReviews: each object is
// converted through its kind's #Convert into the version asked for.
type Handler struct {
	// Library is the template library whose kinds are converted.
	Library *render.Library
	Log     logr.Logger
}

var _ http.Handler = (*Handler)(nil)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "a ConversionReview is POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxReviewBytes {
		http.Error(w, fmt.Sprintf("the ConversionReview exceeds %d bytes", maxReviewBytes), http.StatusRequestEntityTooLarge)
		return
	}
	var review apiextensionsv1.ConversionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "not a ConversionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "the ConversionReview has no request", http.StatusBadRequest)
		return
	}
	resp := h.Review(review.Request)
	out := apiextensionsv1.ConversionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiextensionsv1.SchemeGroupVersion.String(), Kind: "ConversionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.Log.Error(err, "writing the ConversionReview response")
	}
}

// Review converts the objects of one request. A failure to convert any of
// them fails the whole review, as the API server requires: it then answers
// the client's request with the message, which names the object and the
// conversion.
func (h *Handler) Review(req *apiextensionsv1.ConversionRequest) *apiextensionsv1.ConversionResponse {
	resp := &apiextensionsv1.ConversionResponse{UID: req.UID}
	converted, err := h.convertAll(req)
	if err != nil {
		h.Log.Error(err, "conversion failed", "desiredAPIVersion", req.DesiredAPIVersion, "objects", len(req.Objects))
		resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
		return resp
	}
	resp.ConvertedObjects = converted
	resp.Result = metav1.Status{Status: metav1.StatusSuccess}
	return resp
}

func (h *Handler) convertAll(req *apiextensionsv1.ConversionRequest) ([]runtime.RawExtension, error) {
	to, err := schema.ParseGroupVersion(req.DesiredAPIVersion)
	if err != nil {
		return nil, fmt.Errorf("desiredAPIVersion %q: %w", req.DesiredAPIVersion, err)
	}
	out := make([]runtime.RawExtension, 0, len(req.Objects))
	for i, raw := range req.Objects {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw.Raw); err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
		converted, err := h.convert(obj, to)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", obj.GetKind(), objectName(obj), err)
		}
		b, err := converted.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", obj.GetKind(), objectName(obj), err)
		}
		out = append(out, runtime.RawExtension{Raw: b})
	}
	return out, nil
}

func (h *Handler) convert(obj *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error) {
	gvk := obj.GroupVersionKind()
	if gvk.Group != to.Group {
		return nil, fmt.Errorf("cannot convert %s to another group, %s", gvk.GroupVersion(), to)
	}
	kind := h.Library.Kind(gvk)
	if kind == nil {
		return nil, errors.New("no template of this operator serves " + gvk.String())
	}
	if kind.Version(to.Version) == nil {
		return nil, fmt.Errorf("%s has no version %s", kind.GVK.Kind, to.Version)
	}
	return kind.Convert(obj, to.Version)
}

func objectName(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}
