"""Multi-object tracking: Kalman filter, association, camera-motion compensation."""
