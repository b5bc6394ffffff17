//! ONNX models through ONNX Runtime (ort, `load-dynamic`).
//!
//! The runtime library is found and version-checked by [`crate::runtimes`]
//! (the host's `ort_dylib` setting or `ORT_DYLIB_PATH`, a Python environment,
//! beside the plugin, the system path) and opened once per process. A missing
//! library is a clear `Unavailable` error, not a crash, and only ONNX models
//! need it.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};
use switchyard_core::abi::{DType, Tensor, TensorSpec, TensorView};
use switchyard_core::settings::ExecutionProvider;

use crate::providers::{register, Registered};

use crate::EngineError;
use switchyard_plugin_sdk::tensor::{from_f32, from_i64, validate};
use switchyard_plugin_sdk::PluginError;

static ENVIRONMENT: Mutex<Option<&'static ort::environment::Environment>> = Mutex::new(None);

/// Loads ONNX Runtime (once) and returns the process-wide environment.
pub fn environment(configured: Option<&str>) -> Result<&'static ort::environment::Environment, EngineError> {
    let mut slot = ENVIRONMENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = *slot {
        return Ok(env);
    }
    let loaded = crate::runtimes::load_ort(configured)?;
    let path = &loaded.file;
    let load_err = |source| EngineError::OrtLoad { path: path.display().to_string(), source };
    let builder = ort::init_from(path).map_err(load_err)?;
    let env = builder.with_name("switchyard").build().map_err(|source| EngineError::Ort {
        during: "creating the environment for",
        model: "onnxruntime".into(),
        source,
    })?;
    let env: &'static _ = Box::leak(Box::new(env));
    *slot = Some(env);
    Ok(env)
}

/// A loaded ONNX model.
pub struct OnnxModel {
    name: String,
    session: Mutex<Session>,
    input_names: Vec<String>,
    /// Input and output signatures, for `ModelInfo`.
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// The execution provider the session got, and those passed over.
    pub registered: Registered,
}

/// How to build sessions.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// Intra-op threads; 0 for ORT's default.
    pub threads: usize,
    /// The ORT library setting passed by the host.
    pub ort_dylib: Option<String>,
    /// Execution providers to try, in order (see [`crate::providers::plan`]).
    pub providers: Vec<ExecutionProvider>,
    /// The GPU for the CUDA provider.
    pub cuda_device: i32,
    /// Intra-op threads busy-wait between ops (`SWITCHYARD_ORT_SPINNING`; default off).
    pub spinning: bool,
}

impl OnnxModel {
    /// Builds a session for `path`.
    pub fn load(name: &str, path: &Path, options: &OnnxOptions) -> Result<Self, EngineError> {
        let env = environment(options.ort_dylib.as_deref())?;
        let ort_err = |source: ort::Error| EngineError::Ort { during: "loading", model: name.to_string(), source };
        let mut builder = Session::builder(env).map_err(ort_err)?;
        if options.threads > 0 {
            builder = builder.with_intra_threads(options.threads).map_err(|e| ort_err(e.into()))?;
        }
        // The host decodes and preprocesses on the same cores while a model runs; ORT's
        // intra-op threads busy-wait between ops by default and take that time from them
        // (measured: 3-10% more images/s with spinning off, docs/benchmarks.md), so the
        // plugin turns it off unless the host asks (`SWITCHYARD_ORT_SPINNING`).
        builder = builder.with_intra_op_spinning(options.spinning).map_err(|e| ort_err(e.into()))?;
        let (mut builder, registered) = register(builder, &options.providers, options.cuda_device);
        let session = builder.commit_from_file(path).map_err(ort_err)?;
        let spec = |o: &ort::value::Outlet| TensorSpec {
            name: o.name().into(),
            dtype: o.dtype().tensor_type().and_then(dtype_of).unwrap_or(DType::F32).code(),
            shape: o.dtype().tensor_shape().map(|s| s.iter().copied().collect()).unwrap_or_default(),
        };
        let inputs: Vec<_> = session.inputs().iter().map(spec).collect();
        let outputs: Vec<_> = session.outputs().iter().map(spec).collect();
        let input_names = session.inputs().iter().map(|o| o.name().to_string()).collect();
        Ok(OnnxModel { name: name.to_string(), session: Mutex::new(session), input_names, inputs, outputs, registered })
    }

    /// Runs the model; inputs in the model's input order, outputs in its output order.
    pub fn run(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError> {
        if inputs.len() != self.input_names.len() {
            return Err(PluginError::BadInput {
                index: inputs.len(),
                reason: format!(
                    "model `{}` takes {} inputs ({}), got {}",
                    self.name,
                    self.input_names.len(),
                    self.input_names.join(", "),
                    inputs.len()
                ),
            }
            .into());
        }
        let ort_err = |source: ort::Error| EngineError::Ort { during: "running", model: self.name.clone(), source };
        // Aligned inputs are read in place; misaligned ones are copied once.
        let mut data = Vec::with_capacity(inputs.len());
        for (index, view) in inputs.iter().enumerate() {
            data.push(match validate(index, view)? {
                DType::F32 => Data::F32(cast(view.data.as_slice())),
                DType::I64 => Data::I64(cast(view.data.as_slice())),
                // Immich's CLIP text towers take int32 tokens.
                DType::I32 => Data::I32(cast(view.data.as_slice())),
                other => {
                    return Err(PluginError::BadInput {
                        index,
                        reason: format!(
                            "dtype {other:?} is not supported for ONNX inputs; send float32, int64 or int32"
                        ),
                    }
                    .into())
                }
            });
        }
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for ((view, data), name) in inputs.iter().zip(&data).zip(&self.input_names) {
            let shape = view.shape.to_vec();
            let value: SessionInputValue<'_> = match data {
                Data::F32(d) => TensorRef::from_array_view((shape, &**d)).map_err(ort_err)?.into(),
                Data::I64(d) => TensorRef::from_array_view((shape, &**d)).map_err(ort_err)?.into(),
                Data::I32(d) => TensorRef::from_array_view((shape, &**d)).map_err(ort_err)?.into(),
            };
            feeds.push((Cow::Borrowed(name.as_str()), value));
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(feeds).map_err(ort_err)?;
        let mut result = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            let tensor = match value.dtype() {
                ValueType::Tensor { ty: TensorElementType::Float32, .. } => {
                    let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_err)?;
                    from_f32(shape, data)
                }
                ValueType::Tensor { ty: TensorElementType::Int64, .. } => {
                    let (shape, data) = value.try_extract_tensor::<i64>().map_err(ort_err)?;
                    from_i64(shape, data)
                }
                other => {
                    return Err(PluginError::UnsupportedOutput {
                        model: self.name.clone(),
                        what: format!("output `{name}` of type {other:?}"),
                    }
                    .into())
                }
            };
            result.push(tensor);
        }
        Ok(result)
    }
}

enum Data<'a> {
    F32(Cow<'a, [f32]>),
    I64(Cow<'a, [i64]>),
    I32(Cow<'a, [i32]>),
}

fn dtype_of(t: TensorElementType) -> Option<DType> {
    Some(match t {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float16 => DType::F16,
        TensorElementType::Bfloat16 => DType::BF16,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Uint8 => DType::U8,
        _ => return None,
    })
}

/// Reinterprets bytes as `T` in place when aligned, else copies.
fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> Cow<'_, [T]> {
    let usable = bytes.len() - bytes.len() % std::mem::size_of::<T>();
    match bytemuck::try_cast_slice(&bytes[..usable]) {
        Ok(slice) => Cow::Borrowed(slice),
        Err(_) => Cow::Owned(
            bytes[..usable].chunks_exact(std::mem::size_of::<T>()).map(bytemuck::pod_read_unaligned).collect(),
        ),
    }
}
