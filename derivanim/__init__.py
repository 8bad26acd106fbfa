"""derivanim: verified, template-filled Manim animations that explain a derivative."""
