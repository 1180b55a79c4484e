// Package child is the contract between cuerator and the objects it creates
// for a CR: the owner labels and reference that tie a child to its CR, the
// annotations templates and users set on children, the field manager of
// every write, the prune policy and its defaults, the kinds that are never
// deleted or re-created, and the inventory format kept in a CR's status.
//
// It knows Kubernetes object metadata and nothing else: not CUE, not
// server-side apply. Rendering, applying, previews and the controllers all
// read the contract from here, so a rule changes in one place.
package child
