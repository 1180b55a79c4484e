package controllers

// Condition types, with the meaning kstatus, Flux and `kubectl wait` give them.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionDrifted is True while children differ from the template and
	// the drift policy is report.
	ConditionDrifted = "Drifted"
	// ConditionTemplatesLoaded is False while the newest template change
	// failed to load and the last good one is in use.
	ConditionTemplatesLoaded = "TemplatesLoaded"
	// ConditionContested is True while another operator process writes the
	// CR's status too; neither prunes meanwhile.
	ConditionContested = "Contested"
	// ConditionSuspended is True while the CR carries cuerator.dev/suspend:
	// "true": its children are left as they are.
	ConditionSuspended = "Suspended"
)

// Reasons of conditions, and of the warning events that report the same thing.
const (
	// ReasonSucceeded: every child applied and healthy.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: applied; a child is not healthy yet.
	ReasonProgressing = "Progressing"
	// ReasonWaiting: a child waits for others to be ready (the template's
	// graph) before it is applied.
	ReasonWaiting = "Waiting"
	// ReasonChildFailed: a child failed (kstatus Failed: a Deployment past
	// its progress deadline, a failed Job); it stays so until it changes.
	ReasonChildFailed = "ChildFailed"
	// ReasonApplying: new children recorded, about to be created.
	ReasonApplying = "Applying"
	// ReasonInvalidSpec: the spec fails the kind's schema; a new generation
	// is needed.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonTemplateError: the template fails on a valid spec.
	ReasonTemplateError = "TemplateError"
	// ReasonTemplateLoadFailed: the newest templates do not load; the last
	// good ones stay in use.
	ReasonTemplateLoadFailed = "TemplateLoadFailed"
	// ReasonAdoptionRefused: a child exists and belongs to someone else.
	ReasonAdoptionRefused = "AdoptionRefused"
	// ReasonApplyFailed: the API server refused a child; retried with backoff.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonHealthCheckFailed: the children's health could not be read.
	ReasonHealthCheckFailed = "HealthCheckFailed"
	// ReasonObserveFailed: what the status projection reads (pods) could
	// not be read.
	ReasonObserveFailed = "ObserveFailed"
	// ReasonDriftReported: children differ from the template and the drift
	// policy is report.
	ReasonDriftReported = "DriftReported"
	// ReasonDrifted (events): a child was changed by someone else.
	ReasonDrifted = "Drifted"
	// ReasonInputMissing: an object the template reads (inputs) is not
	// there, or could not be read; nothing is applied until it is.
	ReasonInputMissing = "InputMissing"
	// ReasonDeleting: the CR is being deleted, its children in the
	// template's order.
	ReasonDeleting = "Deleting"
	// ReasonDeletionUnordered (events): a deletion in order could not wait
	// any longer, or could not be ordered; the garbage collector takes the
	// children.
	ReasonDeletionUnordered = "DeletionUnordered"
	// ReasonSuspended: the CR is suspended.
	ReasonSuspended = "Suspended"
	// ReasonContested: another operator process reconciles the CR too.
	ReasonContested = "Contested"
)

// ReasonChildrenChanged (events): what a reconcile created, configured,
// re-created, deleted or orphaned, in one event.
const ReasonChildrenChanged = "ChildrenChanged"

// Actions of events (events.k8s.io's "action" field).
const (
	actionRender = "Render"
	actionApply  = "Apply"
	actionDelete = "Delete"
)
