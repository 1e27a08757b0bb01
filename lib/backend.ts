/**
 * Backend selection and reporting. `device: "auto"` (the default, or SPARSE_KERNELS_DEVICE) uses CUDA when
 * the probe finds a usable GPU and the CPU backend otherwise, logging the reason once to stderr;
 * `"cuda"` throws CudaUnavailableError with the reason; `"cpu"` never touches CUDA.
 */
import { CudaUnavailableError } from './errors.js';
import type { NativeCudaProbe } from './native/binding.js';
import { loadBinding, native } from './native/load.js';
import { checkOneOf } from './validate.js';

export type DeviceOption = 'auto' | 'cuda' | 'cpu';
export type Backend = 'cuda' | 'cpu';
export const DEVICE_OPTIONS: readonly DeviceOption[] = ['auto', 'cuda', 'cpu'];

export interface DeviceInfo {
  index: number;
  name: string;
  /** e.g. "9.0" */
  computeCapability: string;
  totalBytes: number;
  freeBytes: number;
  multiprocessors: number;
  /** This binary has kernels for the device. */
  hasKernelImage: boolean;
}

export interface BackendInfo {
  /** The backend a default context uses. */
  backend: Backend;
  /** Why the CPU backend is used (absent when backend is "cuda"). */
  reason?: string;
  /**
   * Stable id of the reason: "device-cpu-requested" | "built-without-cuda" | "no-driver" |
   * "driver-too-old" | "no-device" | "no-kernel-image" | "init-failed".
   */
  reasonCode?: string;
  /** CUDA driver version as an integer (13000 = 13.0); 0 without a driver or when not probed. */
  driverVersion: number;
  /** CUDA runtime version linked into the binary (static cudart). */
  runtimeVersion: number;
  devices: DeviceInfo[];
  /** CUDA architectures compiled into the binary, e.g. "80-real;86-real;89-real;90-real;90-virtual". */
  builtArchitectures: string;
  builtWithCuda: boolean;
  /**
   * CUDA module loading in effect ("eager" | "lazy"; "unknown" when the driver cannot say; absent when
   * CUDA was not initialised). The probe sets CUDA_MODULE_LOADING=EAGER when it is unset and the probe is
   * the process's first CUDA call: with lazy loading the first launch of each kernel while the GPU is busy
   * blocks the calling thread (the event loop) until the GPU is idle. "lazy" here means the user chose it
   * (CUDA_MODULE_LOADING=LAZY) or another library initialised CUDA first.
   */
  moduleLoading?: 'eager' | 'lazy' | 'unknown';
  /**
   * Who chose it: "sparse-kernels" (set EAGER), "environment" (CUDA_MODULE_LOADING was set), "cuda-default"
   * (left unset: a GPU has no machine code in this binary and would JIT every kernel's PTX eagerly, or NVML
   * could not be asked).
   */
  moduleLoadingSource?: 'sparse-kernels' | 'environment' | 'cuda-default';
  /** Absolute path of the loaded .node file. */
  binaryPath: string;
  napiVersion: number;
  /** Build metadata of a prebuilt binary (commit, CUDA version, ...), when present. */
  buildMetadata?: Record<string, unknown>;
  cpu: { threads: number; features: string[]; dispatch: string };
}

/** The device requested by SPARSE_KERNELS_DEVICE (default "auto"). */
export function defaultDeviceOption(): DeviceOption {
  const env = process.env.SPARSE_KERNELS_DEVICE;
  if (env === undefined || env === '') return 'auto';
  return checkOneOf('SPARSE_KERNELS_DEVICE', env, DEVICE_OPTIONS);
}

let probeCache: NativeCudaProbe | undefined;
/** Probes CUDA once per process (initialises the CUDA driver on first call). */
export function probeCuda(): NativeCudaProbe {
  probeCache ??= native().probeCuda();
  return probeCache;
}

let fallbackLogged = false;

/**
 * Decides the backend for a device option. Throws CudaUnavailableError for "cuda" when CUDA cannot be
 * used. For "auto" the fallback reason is logged once per process (silence: SPARSE_KERNELS_LOG=silent).
 */
export function resolveBackend(device: DeviceOption): { backend: Backend; reason?: string; reasonCode?: string } {
  if (device === 'cpu') return { backend: 'cpu', reason: 'device "cpu" was requested', reasonCode: 'device-cpu-requested' };
  const probe = probeCuda();
  if (probe.usable) return { backend: 'cuda' };
  if (device === 'cuda') throw new CudaUnavailableError(`CUDA is not available: ${probe.reason}`);
  if (!fallbackLogged && process.env.SPARSE_KERNELS_LOG !== 'silent') {
    fallbackLogged = true;
    process.stderr.write(`sparse-kernels: using the CPU backend (${probe.reason})\n`);
  }
  return { backend: 'cpu', reason: probe.reason, reasonCode: probe.reasonCode };
}

/**
 * Everything about the loaded binary and the machine: which backend a default context uses and why,
 * driver/runtime versions, devices, built architectures, binary path. With SPARSE_KERNELS_DEVICE=cpu the
 * CUDA probe is skipped.
 */
export function backendInfo(): BackendInfo {
  const { binding, path, metadata } = loadBinding();
  const device = defaultDeviceOption();
  const cpu = binding.cpuInfo();
  if (device === 'cpu') {
    return {
      backend: 'cpu',
      reason: 'device "cpu" was requested (SPARSE_KERNELS_DEVICE=cpu); CUDA was not probed',
      reasonCode: 'device-cpu-requested',
      driverVersion: 0,
      runtimeVersion: 0,
      devices: [],
      builtArchitectures: '',
      builtWithCuda: binding.builtWithCuda(),
      binaryPath: path,
      napiVersion: binding.napiVersion,
      buildMetadata: metadata,
      cpu,
    };
  }
  const probe = probeCuda();
  const info: BackendInfo = {
    backend: probe.usable ? 'cuda' : 'cpu',
    driverVersion: probe.driverVersion,
    runtimeVersion: probe.runtimeVersion,
    devices: probe.devices.map((d) => ({ ...d })),
    builtArchitectures: probe.builtArchitectures,
    builtWithCuda: probe.builtWithCuda,
    ...(probe.builtWithCuda && probe.moduleLoading && probe.devices.length > 0
      ? {
          moduleLoading: probe.moduleLoading as BackendInfo['moduleLoading'],
          moduleLoadingSource: probe.moduleLoadingSource as BackendInfo['moduleLoadingSource'],
        }
      : {}),
    binaryPath: path,
    napiVersion: binding.napiVersion,
    buildMetadata: metadata,
    cpu,
  };
  if (!probe.usable) {
    info.reason = probe.reason;
    info.reasonCode = probe.reasonCode;
  }
  return info;
}

/** Sets the number of CPU threads the CPU backend uses (default: SPARSE_KERNELS_NUM_THREADS or all cores). */
export function setNumThreads(threads: number): void {
  native().setNumThreads(threads);
}

/** Formats backendInfo() as the lines `npx sparse-kernels inspect` prints. */
export function formatBackendInfo(info: BackendInfo): string {
  const v = (n: number) => (n ? `${Math.floor(n / 1000)}.${(n % 1000) / 10}` : 'none');
  const lines = [
    `backend:        ${info.backend}${info.reason ? ` (${info.reason})` : ''}`,
    `binary:         ${info.binaryPath}`,
    `N-API:          ${info.napiVersion}`,
    `built with CUDA: ${info.builtWithCuda ? `yes (architectures ${info.builtArchitectures || 'n/a'})` : 'no'}`,
    `CUDA driver:    ${v(info.driverVersion)}`,
    `CUDA runtime:   ${v(info.runtimeVersion)}`,
    ...(info.moduleLoading
      ? [
          `CUDA modules:   ${info.moduleLoading} loading (${info.moduleLoadingSource ?? 'unknown source'})` +
            (info.moduleLoading === 'lazy' ? ': the first launch of each kernel may wait for a busy GPU' : ''),
        ]
      : []),
    `CPU:            ${info.cpu.threads} threads, ${info.cpu.dispatch} kernels (${info.cpu.features.join(', ') || 'baseline'})`,
  ];
  if (info.devices.length === 0) lines.push('devices:        none');
  for (const d of info.devices) {
    const gib = (b: number) => (b / 2 ** 30).toFixed(1);
    lines.push(
      `device ${d.index}:       ${d.name}, compute capability ${d.computeCapability}, ${d.multiprocessors} SMs, ` +
        `${gib(d.freeBytes)} / ${gib(d.totalBytes)} GiB free${d.hasKernelImage ? '' : ', NO KERNEL IMAGE in this binary'}`,
    );
  }
  if (info.buildMetadata) lines.push(`build:          ${JSON.stringify(info.buildMetadata)}`);
  return lines.join('\n');
}
