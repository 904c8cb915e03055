package floy

import "time"

// The value types of the interface spec (shared/interface-spec.md), with the spec's field
// names and JSON tags. Times are RFC 3339 in UTC on the wire (floy writes microseconds and
// "Z"); a JSON null in a time.Time field leaves it zero (IsZero), which floy sends for
// instances that have not started, versions never recorded and instances that never sent
// a heartbeat.
//
// Fields below an "Extensions" comment are not in the spec: they are floy's optional
// extension keys (docs/http-api.md). They all carry omitempty, so a zero value is never
// sent and a struct without them marshals to exactly the spec's keys.

// Status words of a run (deployment or rollback) and of one instance in it.
const (
	StatusPending    = "pending"     // 等待执行
	StatusInProgress = "in_progress" // 执行中
	StatusCompleted  = "completed"   // 执行完成
	StatusFailed     = "failed"      // 执行失败
	StatusCancelled  = "cancelled"   // 已取消
)

// IsTerminalStatus reports whether status is completed, failed or cancelled: a run or an
// instance with such a status will not change any more.
func IsTerminalStatus(status string) bool {
	return status == StatusCompleted || status == StatusFailed || status == StatusCancelled
}

// NoRetries, as DeployParams.RetryCount, asks for no retry at all. RetryCount 0 is Go's
// zero value and means "not set": the Client then leaves retry_count out and the server
// applies the spec's default (3).
const NoRetries = -1

// DeployParams is the input of ExecuteDeployment (spec 2.2).
//
// Optional fields left at their zero value are not sent, and the server applies the
// spec's defaults: Timeout 0 means 300 seconds, RetryCount 0 means 3 retries (use
// NoRetries for none).
type DeployParams struct {
	Service    string   `json:"service"`     // 必填，服务名称
	Version    string   `json:"version"`     // 必填，目标版本号
	Instances  []string `json:"instances"`   // 必填，实例ID列表
	PackageURL string   `json:"package_url"` // 必填，包下载URL
	DeployID   string   `json:"deploy_id"`   // 必填，发布任务ID
	Timeout    int      `json:"timeout"`     // 可选，超时时间（秒），默认300
	RetryCount int      `json:"retry_count"` // 可选，重试次数，默认3

	// Extensions (floy, optional).

	// BatchSize is how many instances run at once: "N" instances or "N%" of them
	// (server default "1": one instance at a time).
	BatchSize string `json:"batch_size,omitempty"`
	// MaxFailures is how many failed instances the run tolerates before it stops
	// (default 0).
	MaxFailures int `json:"max_failures,omitempty"`
	// PackageSHA256 is the package's hex sha256, checked on every host when set.
	PackageSHA256 string `json:"package_sha256,omitempty"`
	// AutoRollback starts a rollback of the touched instances when the run fails;
	// DeployStatus.RollbackID then names it.
	AutoRollback bool `json:"auto_rollback,omitempty"`
}

// DeployResult is the answer of ExecuteDeployment (spec 2.2).
type DeployResult struct {
	DeployID       string    `json:"deploy_id"`
	Service        string    `json:"service"`
	Version        string    `json:"version"`
	Status         string    `json:"status"`
	TotalInstances int       `json:"total_instances"`
	StartedAt      time.Time `json:"started_at"`
}

// DeployStatus is the answer of GetDeploymentStatus (spec 2.3), for a deployment or a
// rollback run.
type DeployStatus struct {
	DeployID  string           `json:"deploy_id"`
	Service   string           `json:"service"`
	Version   string           `json:"version"`
	Status    string           `json:"status"`
	Progress  Progress         `json:"progress"`
	Instances []InstanceStatus `json:"instances"`
	StartedAt time.Time        `json:"started_at"`
	UpdatedAt time.Time        `json:"updated_at"`

	// Extensions (floy, optional).

	// Kind is "deploy" or "rollback".
	Kind string `json:"kind,omitempty"`
	// ErrorMessage says why the run failed or stopped, if it did.
	ErrorMessage string `json:"error_message,omitempty"`
	// RollbackID names the automatic rollback started for this deployment, if any.
	RollbackID string `json:"rollback_id,omitempty"`
	// FinishedAt is when the run ended; nil while it is still going.
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Progress is DeployStatus.Progress, the spec's anonymous progress struct, named.
// Total == Completed + Failed + Pending (+ Cancelled, floy's extension).
type Progress struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Pending   int `json:"pending"`

	// Extensions (floy, optional).

	// InProgress is the running subset of Pending.
	InProgress int `json:"in_progress,omitempty"`
	// Cancelled counts instances stopped by a cancel.
	Cancelled int `json:"cancelled,omitempty"`
}

// InstanceStatus is an element of DeployStatus.Instances, the spec's anonymous struct,
// named. StartedAt is zero while the instance has not started; CompletedAt is nil until
// it has finished.
type InstanceStatus struct {
	InstanceID     string     `json:"instance_id"`
	CurrentVersion string     `json:"current_version"`
	TargetVersion  string     `json:"target_version"`
	StartedAt      time.Time  `json:"started_at"`
	CompletedAt    *time.Time `json:"completed_at"`
	ErrorMessage   string     `json:"error_message"`

	// Extensions (floy, optional).

	// Status is the instance's own status word (see the Status constants).
	Status string `json:"status,omitempty"`
	// Attempts is how many attempts were made on it.
	Attempts int `json:"attempts,omitempty"`
	// Phase is the step in progress, e.g. "fetch".
	Phase string `json:"phase,omitempty"`
	// Batch is the 1-based serial batch the instance belongs to.
	Batch int `json:"batch,omitempty"`
	// PreviousVersion is what the instance ran before this run touched it.
	PreviousVersion string `json:"previous_version,omitempty"`
}

// CancelResult is the answer of CancelDeployment (spec 2.4). CancelledAt is zero while
// the run is still stopping (Status "in_progress", HTTP 202).
type CancelResult struct {
	DeployID    string    `json:"deploy_id"`
	Status      string    `json:"status"`
	CancelledAt time.Time `json:"cancelled_at"`
}

// ServiceVersions is the answer of GetServiceInstanceVersions (spec 3.2).
// VersionSummary maps a version to the number of instances running it.
type ServiceVersions struct {
	Service        string            `json:"service"`
	Instances      []InstanceVersion `json:"instances"`
	VersionSummary map[string]int    `json:"version_summary"`
	TotalInstances int               `json:"total_instances"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// InstanceVersion is an element of ServiceVersions.Instances, the spec's anonymous
// struct, named.
type InstanceVersion struct {
	InstanceID  string    `json:"instance_id"`
	Version     string    `json:"version"`
	LastUpdated time.Time `json:"last_updated"`
}

// InstanceQueryParams is the input of GetServiceInstances (spec 3.3). An empty Version
// means no filter; Limit 0 means the default (100).
type InstanceQueryParams struct {
	ServiceName string `json:"service_name"` // 服务名称
	Version     string `json:"version"`      // 版本过滤
	Limit       int    `json:"limit"`        // 返回数量限制，默认100
	Offset      int    `json:"offset"`       // 偏移量，默认0
}

// ServiceInstances is the answer of GetServiceInstances (spec 3.3). Total counts every
// matching instance, not just this page.
type ServiceInstances struct {
	Service   string         `json:"service"`
	Instances []InstanceInfo `json:"instances"`
	Total     int            `json:"total"`
	Limit     int            `json:"limit"`
	Offset    int            `json:"offset"`
}

// InstanceInfo is an element of ServiceInstances.Instances, the spec's anonymous struct,
// named. LastHeartbeat is zero when the instance never sent one.
type InstanceInfo struct {
	InstanceID    string            `json:"instance_id"`
	Host          string            `json:"host"`
	Port          int               `json:"port"`
	Version       string            `json:"version"`
	LastHeartbeat time.Time         `json:"last_heartbeat"`
	Metadata      map[string]string `json:"metadata"`
}

// InstanceRollbackParams is the input of RollbackInstance (spec 4.2). An empty
// PackageURL means the package already staged on the host; Timeout 0 means 300 seconds.
// An empty TargetVersion (floy extension) means the version the instance ran before its
// current one; the server answers 422 naming target_version when it does not know it.
type InstanceRollbackParams struct {
	InstanceID    string `json:"instance_id"`    // 必填，实例ID
	TargetVersion string `json:"target_version"` // 必填，目标版本号
	PackageURL    string `json:"package_url"`    // 可选，包下载URL
	Force         bool   `json:"force"`          // 可选，是否强制回滚，默认false
	Timeout       int    `json:"timeout"`        // 可选，超时时间（秒），默认300

	// Extensions (floy, optional).

	// RollbackID names the rollback run; the server generates one when it is empty.
	RollbackID string `json:"rollback_id,omitempty"`
}

// RollbackResult is the answer of RollbackInstance (spec 4.2).
type RollbackResult struct {
	RollbackID    string    `json:"rollback_id"`
	InstanceID    string    `json:"instance_id"`
	TargetVersion string    `json:"target_version"`
	Status        string    `json:"status"`
	StartedAt     time.Time `json:"started_at"`
}

// BatchRollbackParams is the input of RollbackBatch (spec 4.3). An empty PackageURL means
// the packages already staged on the hosts; Timeout 0 means 300 seconds. An empty
// TargetVersion (floy extension) means the one version all the instances ran before their
// one current version (else 422 naming target_version).
type BatchRollbackParams struct {
	Service       string   `json:"service"`        // 必填，服务名称
	TargetVersion string   `json:"target_version"` // 必填，目标版本号
	PackageURL    string   `json:"package_url"`    // 可选，包下载URL
	Instances     []string `json:"instances"`      // 必填，需要回滚的实例ID列表
	Force         bool     `json:"force"`          // 可选，是否强制回滚
	Timeout       int      `json:"timeout"`        // 可选，超时时间

	// Extensions (floy, optional).

	// BatchSize is how many instances roll back at once ("N" or "N%"; default "1").
	BatchSize string `json:"batch_size,omitempty"`
	// MaxFailures is how many failed instances the run tolerates (default 0).
	MaxFailures int `json:"max_failures,omitempty"`
	// RollbackID names the rollback run; the server generates one when it is empty.
	RollbackID string `json:"rollback_id,omitempty"`
}

// BatchRollbackResult is the answer of RollbackBatch (spec 4.3).
type BatchRollbackResult struct {
	RollbackID     string    `json:"rollback_id"`
	Service        string    `json:"service"`
	TargetVersion  string    `json:"target_version"`
	Status         string    `json:"status"`
	Instances      []string  `json:"instances"`
	TotalInstances int       `json:"total_instances"`
	StartedAt      time.Time `json:"started_at"`
}
